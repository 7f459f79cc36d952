"""The webcam client's numbers, on videos made from a shipped photo (docs/examples/face.jpg):

    python -m bench.webcam [--url http://127.0.0.1:3000] [--frames 150]

- frames per second of `python -m clients.webcam` on a 640x480 video with one moving face:
  through the service one request at a time, pipelined (--in-flight 3), and --local (no service);
- what One Euro smoothing does: frame-to-frame jitter of the keypoints on a still face with
  sensor-like noise, and the lag behind a face that moves at steady speed, raw vs smoothed;
- what following faces does (clients/tracking.py), through the service, tracking vs --no-track:
  frames per second on the one-face video (and by --detect-every); keypoint error (NME, % of the
  outer-eye distance) and frames with a face on a clip that cuts to another person in the same
  place every 3 frames (the fixture faces, whose landmarks are known); distinct ids and id
  switches on a pan across four people.

The service is --url, else $VISION_URL, else http://127.0.0.1:3000 (start it with `make serve`);
--no-service measures only what needs no service. Results also go to bench/results/webcam.json.
"""

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from clients.answers import Face, box_of
from clients.api import URL_HELP, ServiceError, VisionClient, service_url, unreachable_message
from clients.smoothing import FaceSmoother
from clients.tracking import DETECT_EVERY
from clients.webcam import Options, run

PHOTO = Path(__file__).resolve().parents[1] / "docs" / "examples" / "face.jpg"
RESULTS = Path(__file__).resolve().parent / "results" / "webcam.json"
FRAME_SIZE = (640, 480)
FPS = 30.0
SENSOR_NOISE = 4.0  # grey levels, per pixel and frame: an indoor webcam's noise
SPEEDS = (2.0, 4.0, 8.0)  # pixels per frame, at 30 fps: 60, 120, 240 px/s
FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "faces"
# The cut clip: one fixture photo after another, people alternating, each for CUT_EVERY frames.
CUT_ORDER = (
    "Abdel_Aziz_Al-Hakim_02.jpg",
    "Barry_Alvarez_20.jpg",
    "Chris_Noth_10.jpg",
    "David_Brent_30.jpg",
    "Flavia_Pennetta_32.jpg",
    "Abdel_Aziz_Al-Hakim_41.jpg",
    "Barry_Alvarez_12.jpg",
    "Chris_Noth_11.jpg",
    "David_Brent_01.jpg",
    "Flavia_Pennetta_51.jpg",
)
CUT_EVERY = 3
PAN_PEOPLE = ("Abdel_Aziz_Al-Hakim_02.jpg", "Barry_Alvarez_20.jpg", "Chris_Noth_10.jpg", "Flavia_Pennetta_32.jpg")
PAN_SPACING, PAN_SPEED = 330, 5  # px between the four faces; px per frame the view moves
DETECT_EVERY_TRIED = (5, 10, 20)


def portrait(height: int = 400) -> np.ndarray:
    photo = cv2.imread(str(PHOTO))
    if photo is None:
        sys.exit(f"error: cannot read the example photo {PHOTO}")
    return cv2.resize(photo, (round(photo.shape[1] * height / photo.shape[0]), height), interpolation=cv2.INTER_AREA)


def face_frames(count: int, speed: float = 0.0, noise: float = 0.0, seed: int = 0):
    """640x480 frames of the portrait on grey, panning right `speed` px per frame (bouncing off
    the edges), each with Gaussian noise of `noise` grey levels: (frames, x offset of each)."""
    rng = np.random.default_rng(seed)
    face, (width, height) = portrait(), FRAME_SIZE
    travel = width - face.shape[1]
    frames, offsets = [], []
    for i in range(count):
        x = (travel // 4 + speed * i) % (2 * travel)
        x = x if x <= travel else 2 * travel - x
        frame = np.full((height, width, 3), 120, np.uint8)
        shift = np.float32([[1, 0, x], [0, 1, height - face.shape[0]]])  # subpixel: steady motion, no stutter
        cv2.warpAffine(face, shift, (width, height), dst=frame, borderMode=cv2.BORDER_TRANSPARENT)
        if noise:
            frame = np.clip(frame + rng.normal(0, noise, frame.shape), 0, 255).astype(np.uint8)
        frames.append(frame)
        offsets.append(x)
    return frames, np.array(offsets)


def write_video(path: Path, frames: list[np.ndarray], fps: float = FPS) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, FRAME_SIZE)
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def client_fps(video: Path, url: str | None, in_flight: int, local: bool = False) -> dict:
    options = Options(source=str(video), url=url, window=False, in_flight=in_flight, local=local, track=False)
    stats = asyncio.run(run(options))  # detection on every frame: the rows before tracking (see tracking_numbers)
    return {"fps": round(stats.fps, 1), "round_trip_p50_ms": stats.round_trip_ms(50), "frames": stats.frames}


def raw_points(frames: list[np.ndarray]) -> np.ndarray:
    """(frames, 17, 2): the box corners and 15 keypoints of the one face in each frame, unsmoothed,
    from the local pipeline (the models the service runs, in this process)."""
    from clients.local import LocalFaces

    find = LocalFaces()
    faces = [find(frame).faces for frame in frames]
    if any(len(f) != 1 for f in faces):
        sys.exit("error: the benchmark video lost its face in some frames")
    return np.stack([face_points(f[0]) for f in faces])


def face_points(face: Face) -> np.ndarray:
    """(17, 2): the face's box corners, then its 15 keypoints."""
    box = face.box
    return np.vstack([[[box.x, box.y], [box.x + box.width, box.y + box.height]], face.points])


def smoothed(points: np.ndarray) -> np.ndarray:
    """The same points through the client's smoother, at 30 fps (the one face, id 1)."""
    smoother = FaceSmoother()
    out = []
    for i, p in enumerate(points):
        face = Face.from_json(
            {
                "box": {"x": p[0, 0], "y": p[0, 1], "width": p[1, 0] - p[0, 0], "height": p[1, 1] - p[0, 1]},
                "keypoints": [{"name": str(j), "x": x, "y": y} for j, (x, y) in enumerate(p[2:])],
                "id": 1,
            }
        )
        out.append(face_points(smoother([face], i / FPS)[0]))
    return np.stack(out)


def jitter(points: np.ndarray) -> float:
    """RMS frame-to-frame movement of the 15 keypoints, in pixels."""
    steps = np.diff(points[:, 2:], axis=0)
    return float(np.sqrt((steps**2).sum(axis=-1).mean()))


def lag_frames(raw: np.ndarray, filtered: np.ndarray, speed: float, offsets: np.ndarray) -> float:
    """How many frames the smoothed keypoints trail the raw ones, on frames of steady motion (not
    the first second, not within 3 frames of a bounce)."""
    velocity = np.gradient(offsets)
    steady = np.ones(len(offsets), bool)
    steady[: int(FPS)] = False
    for turn in np.flatnonzero(np.sign(velocity[1:]) != np.sign(velocity[:-1])):
        steady[max(0, turn - 3) : turn + int(FPS)] = False
    behind = (raw[steady, 2:, 0] - filtered[steady, 2:, 0]) * np.sign(velocity[steady])[:, None]
    return float(behind.mean() / speed)


def smoothing_numbers(count: int) -> dict:
    still = raw_points(face_frames(count, noise=SENSOR_NOISE)[0])
    face_width = float(np.median(still[:, 1, 0] - still[:, 0, 0]))
    numbers = {
        "face_width_px": round(face_width, 1),
        "still_jitter_px": {"raw": round(jitter(still), 3), "smoothed": round(jitter(smoothed(still)), 3)},
        "lag_frames": {},
    }
    for speed in SPEEDS:
        frames, offsets = face_frames(count, speed=speed, noise=SENSOR_NOISE)
        raw = raw_points(frames)
        key = f"{speed * FPS:.0f} px/s ({speed * FPS / face_width:.2f} face widths/s)"
        numbers["lag_frames"][key] = round(lag_frames(raw, smoothed(raw), speed, offsets), 2)
    return numbers


# --- following faces ---------------------------------------------------------------------------


def placed_face(canvas: np.ndarray, name: str, eye_distance: float, centre: tuple[float, float]) -> np.ndarray:
    """Paste fixture photo `name` onto `canvas` (in place) scaled so that its outer eye corners are
    `eye_distance` px apart and its 15 keypoints' centroid lies at `centre`; its 15 true keypoints."""
    from training.faces_data import load_landmarks68  # numpy and OpenCV only
    from vision.keypoints import OUTER_EYE_CORNERS, from_ibug68

    landmarks = load_landmarks68(FIXTURES / "keypoints68.csv")
    truth = from_ibug68(landmarks.points[landmarks.names.index(name)])
    scale = eye_distance / np.linalg.norm(truth[OUTER_EYE_CORNERS[0]] - truth[OUTER_EYE_CORNERS[1]])
    shift = np.asarray(centre) - scale * truth.mean(axis=0)
    matrix = np.float32([[scale, 0, shift[0]], [0, scale, shift[1]]])
    photo = cv2.imread(str(FIXTURES / "images" / name))
    size = (canvas.shape[1], canvas.shape[0])
    cv2.warpAffine(photo, matrix, size, dst=canvas, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_TRANSPARENT)
    return truth * scale + shift


def cut_frames(count: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """640x480 frames that cut to another person every CUT_EVERY frames, each face in the same
    place (drifting 1 px per frame), with sensor noise: (frames, their (15, 2) true keypoints)."""
    rng = np.random.default_rng(seed)
    frames, truths = [], []
    for i in range(count):
        frame = np.full((FRAME_SIZE[1], FRAME_SIZE[0], 3), 120, np.uint8)
        name = CUT_ORDER[(i // CUT_EVERY) % len(CUT_ORDER)]
        truths.append(placed_face(frame, name, 100.0, (300 + i % 40, 250)))
        frames.append(np.clip(frame + rng.normal(0, SENSOR_NOISE, frame.shape), 0, 255).astype(np.uint8))
    return frames, np.stack(truths)


def pan_frames(seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """A 640x480 view panning right across four people side by side, PAN_SPEED px per frame:
    (frames, (frames, 4, 15, 2) true keypoints in each frame's pixels)."""
    rng = np.random.default_rng(seed)
    wide = np.full((FRAME_SIZE[1], PAN_SPACING * len(PAN_PEOPLE) + 40, 3), 120, np.uint8)
    truth = np.stack(
        [placed_face(wide, name, 70.0, (20 + PAN_SPACING * (i + 0.5), 240)) for i, name in enumerate(PAN_PEOPLE)]
    )
    frames, truths = [], []
    for x in range(0, wide.shape[1] - FRAME_SIZE[0] + 1, PAN_SPEED):
        view = wide[:, x : x + FRAME_SIZE[0]]
        frames.append(np.clip(view + rng.normal(0, SENSOR_NOISE, view.shape), 0, 255).astype(np.uint8))
        truths.append(truth - [x, 0])
    return frames, np.stack(truths)


def client_records(video: Path, url: str | None, track: bool, detect_every: int = DETECT_EVERY, local=False):
    """Run the webcam client over a video: (its stats, its JSON lines)."""
    lines = video.with_suffix(".jsonl")
    options = Options(
        source=str(video), url=url, jsonl=lines, window=False, local=local, track=track, detect_every=detect_every
    )
    stats = asyncio.run(run(options))
    return stats, [json.loads(line) for line in lines.read_text().splitlines()]


def normalized_error(points: np.ndarray, truth: np.ndarray) -> float:
    from vision.keypoints import OUTER_EYE_CORNERS

    eyes = np.linalg.norm(truth[OUTER_EYE_CORNERS[0]] - truth[OUTER_EYE_CORNERS[1]])
    return float(np.linalg.norm(points - truth, axis=1).mean() / eyes)


def cut_numbers(records: list[dict], truths: np.ndarray) -> dict:
    """NME (%) over the frames where the face was found, and the share of frames where it was."""
    errors = []
    for record, truth in zip(records, truths, strict=True):
        faces = [Face.from_json(face) for face in record["faces"] or []]
        if faces:
            nearest = min(faces, key=lambda f: np.linalg.norm(face_points(f)[2:].mean(0) - truth.mean(0)))
            errors.append(normalized_error(face_points(nearest)[2:], truth))
    return {
        "nme_percent": round(100 * float(np.mean(errors)), 2),
        "frames_with_a_face_percent": round(100 * len(errors) / len(records), 1),
        "distinct_ids": len({f["id"] for r in records for f in r["faces"] or []}),
    }


def pan_numbers(records: list[dict], truths: np.ndarray) -> dict:
    """Distinct ids over the pan, and id switches: a person whose face changes id from one frame
    where it is found to the next (a face is a person's when that person's points' centre lies in
    its box)."""
    last_id, switches, found = {}, 0, 0
    for record, people in zip(records, truths, strict=True):
        for face in record["faces"] or []:
            box = box_of(face["box"])
            inside = [
                p
                for p, points in enumerate(people)
                if box.x <= points.mean(0)[0] <= box.x + box.width and box.y <= points.mean(0)[1] <= box.y + box.height
            ]
            if len(inside) != 1:
                continue
            found += 1
            person = inside[0]
            switches += person in last_id and last_id[person] != face["id"]
            last_id[person] = face["id"]
    return {
        "distinct_ids": len({f["id"] for r in records for f in r["faces"] or []}),
        "id_switches": int(switches),
        "faces_found": found,
        "faces_in_view": int(sum(((p.mean(1)[:, 0] >= 0) & (p.mean(1)[:, 0] < FRAME_SIZE[0])).sum() for p in truths)),
    }


def tracking_numbers(folder: Path, url: str | None, count: int, local: bool = False) -> dict:
    """Tracking vs --no-track, through the service (or --local), on the three clips."""
    numbers = {"detect_every": DETECT_EVERY, "fps": {}, "cut_clip": {}, "pan": {}}
    moving = write_video(folder / "one_face.avi", face_frames(count, speed=4, noise=SENSOR_NOISE)[0])
    for track, every in [(False, 1), *((True, n) for n in DETECT_EVERY_TRIED)]:
        stats, _ = client_records(moving, url, track, every, local)
        key = f"tracking, --detect-every {every}" if track else "--no-track"
        numbers["fps"][key] = {"fps": round(stats.fps, 1), "detected_on": stats.detected or stats.frames}
    frames, truths = cut_frames(count)
    cut = write_video(folder / "cuts.avi", frames)
    frames, pans = pan_frames()
    pan = write_video(folder / "pan.avi", frames)
    for track in (False, True):
        key = "tracking" if track else "--no-track"
        stats, records = client_records(cut, url, track, local=local)
        numbers["cut_clip"][key] = {**cut_numbers(records, truths), "detected_on": stats.detected or stats.frames}
        stats, records = client_records(pan, url, track, local=local)
        numbers["pan"][key] = {**pan_numbers(records, pans), "detected_on": stats.detected or stats.frames}
    numbers["cut_clip"]["frames"], numbers["pan"]["frames"] = count, len(pans)
    return numbers


def print_tracking(numbers: dict) -> None:
    for key, value in numbers["fps"].items():
        print(f"one face, {key:<30} {value['fps']:6.1f} FPS, detected on {value['detected_on']} frames")
    for key, value in numbers["cut_clip"].items():
        if isinstance(value, dict):
            print(
                f"cut clip, {key:<12} NME {value['nme_percent']:.2f}%, a face on "
                f"{value['frames_with_a_face_percent']:.1f}% of frames, {value['distinct_ids']} ids, "
                f"detected on {value['detected_on']}"
            )
    for key, value in numbers["pan"].items():
        if isinstance(value, dict):
            print(
                f"pan, {key:<12} {value['distinct_ids']} distinct ids, {value['id_switches']} id switches, "
                f"{value['faces_found']} of {value['faces_in_view']} faces in view found, "
                f"detected on {value['detected_on']}"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.webcam", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help=URL_HELP)
    parser.add_argument("--frames", type=int, default=150, help="frames per video (default 150: 5 s)")
    parser.add_argument("--no-service", action="store_true", help="only --local and smoothing")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"the JSON results (default {RESULTS})")
    parser.add_argument("--only-tracking", action="store_true", help="only the tracking numbers")
    args = parser.parse_args(argv)
    if args.frames < 2 * FPS:
        parser.exit(2, f"error: --frames must be at least {2 * FPS:.0f}\n")
    url = args.url or service_url()
    if not args.no_service:
        with VisionClient(url, retries=0) as client:
            if not client.ready():
                sys.exit(f"error: {unreachable_message(url)}")
    results = json.loads(args.out.read_text()) if args.only_tracking and args.out.exists() else {}
    results.update({"frames": args.frames, "frame_size": list(FRAME_SIZE)})
    with tempfile.TemporaryDirectory() as folder:
        video = write_video(Path(folder) / "moving.avi", face_frames(args.frames, speed=4, noise=SENSOR_NOISE)[0])
        try:
            if not args.only_tracking:
                results["fps"] = {}
                if not args.no_service:
                    results["fps"]["service, one at a time"] = client_fps(video, url, in_flight=1)
                    results["fps"]["service, pipelined (--in-flight 3)"] = client_fps(video, url, in_flight=3)
                results["fps"]["--local, pipelined (--in-flight 3)"] = client_fps(video, None, 3, local=True)
            where = "--local" if args.no_service else "service"
            results["tracking"] = {where: tracking_numbers(Path(folder), url, args.frames, local=args.no_service)}
        except ServiceError as e:
            sys.exit(f"error: {e}")
    if not args.only_tracking:
        for mode, numbers in results["fps"].items():
            trip = numbers["round_trip_p50_ms"]
            print(f"{mode:<40} {numbers['fps']:6.1f} FPS   round trip p50 {trip:.0f} ms")
        results["smoothing"] = smoothing_numbers(args.frames)
        still = results["smoothing"]["still_jitter_px"]
        print(f"still-face jitter: raw {still['raw']:.2f} px, smoothed {still['smoothed']:.2f} px per frame")
        for speed, lag in results["smoothing"]["lag_frames"].items():
            print(f"lag behind a face moving {speed}: {lag:.2f} frames")
    for where, numbers in results["tracking"].items():
        print(f"following faces ({where}):")
        print_tracking(numbers)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
