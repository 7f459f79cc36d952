"""Writing `models/manifest.json` (reading and verifying it is `vision.manifest`, shared with the service)."""

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from export.convert import describe
from export.parity import Parity
from export.specs import Spec, Validation
from vision.manifest import sha256_of


def git_commit() -> str:
    """HEAD's commit, marked `+dirty` when the working tree has uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def entry(
    spec: Spec, onnx_path: Path, checkpoint_path: Path, checkpoint: dict, parity: Parity, data: Validation
) -> dict:
    return {
        "file": onnx_path.name,
        "sha256": sha256_of(onnx_path),
        **describe(onnx_path),
        "task": spec.task.name,
        "metrics": {"training": checkpoint.get("metrics", {}), "onnxruntime": parity.onnx_metrics},
        "parity": parity.as_dict(),
        "trained_on": checkpoint.get("config", {}).get("data", "unknown"),
        "validated_on": data.source,
        "checkpoint": {"file": checkpoint_path.name, "sha256": sha256_of(checkpoint_path)},
    }


# The face detector ships beside the models, verified like them; it is not trained or exported here.
YUNET = {
    "file": "yunet/face_detection_yunet_2023mar_dynamic.onnx",
    "task": "face_detection",
    "source": "github.com/ShiqiYu/libfacedetection.train @ 0047ac24 onnx/yunet_s_640_640.onnx "
    "(also opencv/opencv_zoo face_detection_yunet_2023mar.onnx); see models/yunet/README.md",
    "license": "Apache-2.0 (models/yunet/LICENSE)",
    "runtime": "onnxruntime, decoded as cv2.FaceDetectorYN decodes (vision.detectors.YuNetDetector)",
    "derived_from": {
        "file": "yunet/face_detection_yunet_2023mar.onnx",
        "sha256": "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
        "change": "input height/width and output anchor counts made symbolic (python -m export.yunet); "
        "the same nodes and weights",
    },
}


def detector_entries(models_dir: Path) -> dict[str, dict]:
    """The manifest entry of the YuNet detector, where its file is in `models_dir`."""
    path = Path(models_dir) / YUNET["file"]
    return {"yunet": {**YUNET, "sha256": sha256_of(path)}} if path.is_file() else {}


def write(path: Path, entries: dict[str, dict]) -> None:
    manifest = {
        "models": {**entries, **detector_entries(Path(path).parent)},
        "git_commit": git_commit(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    partial = Path(path).with_suffix(".partial")
    partial.write_text(json.dumps(manifest, indent=2) + "\n")
    partial.replace(path)
