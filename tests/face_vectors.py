"""The test vectors that the face tracker and smoother share with their JavaScript twins:
tests/fixtures/face_vectors.json, a short clip's /faces answers with the plans, ids and smoothed
faces that clients/tracking.py and clients/smoothing.py make of them. tests/test_tracking.py and
tests/test_smoothing.py replay them through the Python modules, tests/test_page.py through
service/page/tracking.js and smoothing.js in Chromium.

    .venv/bin/python tests/face_vectors.py    # rewrite the fixture (needs the shipped models)

The clip: three fixture faces (tests/fixtures/faces) on a plain backdrop, one drifting right, one
still, one that walks in at frame WALKS_IN, at FPS frames a second. Each frame is planned by the
tracker (detect, or follow with boxes; DETECT_EVERY frames apart) and answered by the shipped
pipeline in this process (clients.local, as /faces answers), one answer before the next plan. The
frames themselves are not kept (the tracker runs without them: no cut check), so the file stays
small and both languages replay it from the answers alone.
"""

import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np

TESTS = Path(__file__).resolve().parent
VECTORS = TESTS / "fixtures" / "face_vectors.json"
FACES = TESTS / "fixtures" / "faces" / "images"
SIZE = (960, 400)  # the frame, width x height
FPS = 15.0
FRAMES = 12
DETECT_EVERY = 4  # detections at 0, 4 and 8: the face that walks in is found at 8
WALKS_IN = 6
# (fixture photo, scale, x at frame 0, y, x pixels per frame, first frame in view)
PEOPLE = (
    ("Chris_Noth_10.jpg", 0.8, 20, 40, 6, 0),
    ("Barry_Alvarez_20.jpg", 0.65, 380, 70, 0, 0),
    ("Abdel_Aziz_Al-Hakim_02.jpg", 0.7, 700, 90, -2, WALKS_IN),
)
ROUND = 0.011  # the answers' and the smoothed faces' values are rounded to 2 decimals


def clip() -> list[np.ndarray]:
    """The clip's BGR frames."""
    width, height = SIZE
    frames = []
    for i in range(FRAMES):
        frame = np.full((height, width, 3), 118, np.uint8)
        for name, scale, x, y, step, first in PEOPLE:
            if i >= first:
                photo = cv2.resize(
                    cv2.imread(str(FACES / name)), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA
                )
                left = x + step * (i - first)
                frame[y : y + photo.shape[0], left : left + photo.shape[1]] = photo
        frames.append(frame)
    return frames


def smoothed_record(face: dict) -> dict:
    """A smoothed face as the vectors hold it: its id, box, points and pose (the rest is the answer's)."""
    return {
        "id": face["id"],
        "box": face["box"],
        "points": [[k["x"], k["y"]] for k in face["keypoints"]],
        "pose": face.get("pose"),
    }


def outcome(boxes: list[dict] | None, ids: list[int], tracked: list[dict], smoothed: list[dict]) -> dict:
    """One frame's outcome as the vectors hold it: the plan (`boxes` None: detect; else the boxes
    sent and the ids they follow), the tracked faces' ids, and the smoothed faces in that order."""
    by_id = {face["id"]: face for face in smoothed}
    return {
        "plan": {"boxes": boxes, "ids": list(ids)},
        "ids": [face["id"] for face in tracked],
        "smoothed": [smoothed_record(by_id[face["id"]]) for face in tracked],
    }


def run(answer, detect_every: int = DETECT_EVERY, frames: int = FRAMES) -> list[dict]:
    """Each frame through the tracker and the smoother, as the webcam client runs them (one answer
    before the next plan), with `answer(index, boxes)` as /faces (its JSON faces): per frame, its
    time, the plan, the answer, the ids and the smoothed faces, as the vectors hold them."""
    from clients.answers import Face
    from clients.smoothing import FaceSmoother
    from clients.tracking import Tracker

    tracker, smoother, out = Tracker(detect_every), FaceSmoother(), []
    for index in range(frames):
        plan = tracker.plan(index, None)
        faces = answer(index, plan.boxes)
        tracked = tracker.update(plan, None, [Face.from_json(face) for face in faces])
        smoothed = smoother(tracked, index / FPS)
        as_json = [face.as_json() for face in tracked], [face.as_json() for face in smoothed]
        out.append({"frame": index, "t": index / FPS, "answer": faces, **outcome(plan.boxes, plan.ids, *as_json)})
    return out


def record() -> dict:
    """The clip through the shipped pipeline (in this process), the tracker and the smoother."""
    from clients.local import LocalFaces

    find, images = LocalFaces(), clip()
    frames = run(lambda index, boxes: find(images[index], boxes).as_json()["faces"])
    return {"detect_every": DETECT_EVERY, "frames": frames}


def replay(vectors: dict) -> list[dict]:
    """The vectors' answers through the Python tracker and smoother."""
    frames = vectors["frames"]
    return run(lambda index, boxes: frames[index]["answer"], vectors["detect_every"], len(frames))


def write(vectors: dict, path: Path = VECTORS) -> None:
    """One frame a line: small, and a change shows as the frames it touches."""
    lines = ",\n".join(json.dumps(frame, separators=(",", ":")) for frame in vectors["frames"])
    about = "written by tests/face_vectors.py: a clip's /faces answers, the plans, ids and smoothed faces"
    path.write_text(f'{{"about":"{about}","detect_every":{vectors["detect_every"]},"frames":[\n{lines}\n]}}\n')


def load(path: Path = VECTORS) -> dict:
    return json.loads(path.read_text())


def close(ours, theirs) -> bool:
    """Equal, numbers within ROUND (the two languages may round a last digit apart)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return ours.keys() == theirs.keys() and all(close(ours[k], theirs[k]) for k in ours)
    if isinstance(ours, list | tuple) and isinstance(theirs, list | tuple):
        return len(ours) == len(theirs) and all(close(a, b) for a, b in zip(ours, theirs, strict=True))
    if isinstance(ours, int | float) and isinstance(theirs, int | float) and not isinstance(ours, bool):
        return math.isclose(ours, theirs, abs_tol=ROUND)
    return ours == theirs


def assert_replayed(vectors: dict, replayed: list[dict], keys=("plan", "ids", "smoothed")) -> None:
    """`replayed` (per frame: the plan, the ids and the smoothed faces, as the vectors hold them)
    is what the vectors expect."""
    assert len(replayed) == len(vectors["frames"])
    for expected, got in zip(vectors["frames"], replayed, strict=True):
        for key in keys:
            assert close(got[key], expected[key]), f"frame {expected['frame']} {key}: {got[key]} != {expected[key]}"


if __name__ == "__main__":
    sys.path.insert(0, str(TESTS.parent))
    vectors = record()
    write(vectors)
    faces = sum(len(frame["answer"]) for frame in vectors["frames"])
    print(f"{VECTORS.relative_to(TESTS.parent)}: {FRAMES} frames, {faces} faces, {VECTORS.stat().st_size // 1024} KiB")
