"""The webcam client's numbers, on videos made from a shipped photo (docs/examples/face.jpg):

    python -m bench.webcam [--url http://127.0.0.1:3000] [--frames 150]

- frames per second of `python -m clients.webcam` on a 640x480 video with one moving face:
  through the service one request at a time, pipelined (--in-flight 3), and --local (no service);
- what One Euro smoothing does: frame-to-frame jitter of the keypoints on a still face with
  sensor-like noise, and the lag behind a face that moves at steady speed, raw vs smoothed.

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

from clients.api import URL_HELP, ServiceError, VisionClient, service_url, unreachable_message
from clients.smoothing import FaceSmoother
from clients.webcam import Options, run

PHOTO = Path(__file__).resolve().parents[1] / "docs" / "examples" / "face.jpg"
RESULTS = Path(__file__).resolve().parent / "results" / "webcam.json"
FRAME_SIZE = (640, 480)
FPS = 30.0
SENSOR_NOISE = 4.0  # grey levels, per pixel and frame: an indoor webcam's noise
SPEEDS = (2.0, 4.0, 8.0)  # pixels per frame, at 30 fps: 60, 120, 240 px/s


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
    stats = asyncio.run(run(Options(source=str(video), url=url, window=False, in_flight=in_flight, local=local)))
    return {"fps": round(stats.fps, 1), "round_trip_p50_ms": stats.round_trip_ms(50), "frames": stats.frames}


def raw_points(frames: list[np.ndarray]) -> np.ndarray:
    """(frames, 17, 2): the box corners and 15 keypoints of the one face in each frame, unsmoothed,
    from the local pipeline (the models the service runs, in this process)."""
    from clients.local import LocalFaces

    find = LocalFaces()
    faces = [find(frame)["faces"] for frame in frames]
    if any(len(f) != 1 for f in faces):
        sys.exit("error: the benchmark video lost its face in some frames")
    return np.stack([face_points(f[0]) for f in faces])


def face_points(face: dict) -> np.ndarray:
    box = face["box"]
    corners = [[box["x"], box["y"]], [box["x"] + box["width"], box["y"] + box["height"]]]
    return np.array(corners + [[k["x"], k["y"]] for k in face["keypoints"]], dtype=np.float64)


def smoothed(points: np.ndarray) -> np.ndarray:
    """The same points through the client's smoother, at 30 fps."""
    smoother = FaceSmoother()
    out = []
    for i, p in enumerate(points):
        box = {"x": p[0, 0], "y": p[0, 1], "width": p[1, 0] - p[0, 0], "height": p[1, 1] - p[0, 1]}
        face = {"box": box, "keypoints": [{"name": str(j), "x": x, "y": y} for j, (x, y) in enumerate(p[2:])]}
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.webcam", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help=URL_HELP)
    parser.add_argument("--frames", type=int, default=150, help="frames per video (default 150: 5 s)")
    parser.add_argument("--no-service", action="store_true", help="only --local and smoothing")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"the JSON results (default {RESULTS})")
    args = parser.parse_args(argv)
    if args.frames < 2 * FPS:
        parser.exit(2, f"error: --frames must be at least {2 * FPS:.0f}\n")
    url = args.url or service_url()
    if not args.no_service:
        with VisionClient(url, retries=0) as client:
            if not client.ready():
                sys.exit(f"error: {unreachable_message(url)}")
    results = {"frames": args.frames, "frame_size": list(FRAME_SIZE), "fps": {}}
    with tempfile.TemporaryDirectory() as folder:
        video = write_video(Path(folder) / "moving.avi", face_frames(args.frames, speed=4, noise=SENSOR_NOISE)[0])
        try:
            if not args.no_service:
                results["fps"]["service, one at a time"] = client_fps(video, url, in_flight=1)
                results["fps"]["service, pipelined (--in-flight 3)"] = client_fps(video, url, in_flight=3)
            results["fps"]["--local, pipelined (--in-flight 3)"] = client_fps(video, None, 3, local=True)
        except ServiceError as e:
            sys.exit(f"error: {e}")
    for mode, numbers in results["fps"].items():
        trip = numbers["round_trip_p50_ms"]
        print(f"{mode:<40} {numbers['fps']:6.1f} FPS   round trip p50 {trip:.0f} ms")
    results["smoothing"] = smoothing_numbers(args.frames)
    still = results["smoothing"]["still_jitter_px"]
    print(f"still-face jitter: raw {still['raw']:.2f} px, smoothed {still['smoothed']:.2f} px per frame")
    for speed, lag in results["smoothing"]["lag_frames"].items():
        print(f"lag behind a face moving {speed}: {lag:.2f} frames")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
