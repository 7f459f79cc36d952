"""CPU speed-ups for the exported models, kept only when they earn it.

    python -m export.optimize --mnist ../shared/data/mnist --faces data/faces/faces.npz

For each model in the manifest, measures session load time, onnxruntime latency (batch 1 and 64)
and the validation metric of: the raw graph with no runtime optimization, the graph as the
service runs it (online optimization, ORT_ENABLE_ALL), an offline-optimized graph saved to disk
(what shipping one would save is load time), and int8 static quantization (QDQ, calibrated on
training images, never validation ones). An int8 model is kept only if digits lose <= 0.1
points / keypoints <= 5% of the score, and it is at least 10% faster at batch 64: it is written
as models/NAME_int8.onnx and listed in the manifest as NAME_int8 (the service uses it with
VISION_INT8=1). The figures go to models/optimizations.json.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from export import manifest as manifest_writer
from export.convert import describe
from export.parity import run_onnx, session
from export.specs import SPECS, Spec, measure, validation_data
from training import keypoints
from training.common import write_json
from training.mnist import load_mnist
from vision.errors import InputError
from vision.manifest import ManifestError, read_manifest, sha256_of, verified_model

MAX_DIGIT_LOSS = 0.001  # 0.1 accuracy points
MAX_SCORE_LOSS = 0.05  # 5% of the keypoint score


class Calibration(CalibrationDataReader):
    def __init__(self, images: np.ndarray, batch_size: int = 32):
        self._batches = iter([images[i : i + batch_size] for i in range(0, len(images), batch_size)])

    def get_next(self):
        batch = next(self._batches, None)
        return None if batch is None else {"image": batch}


def calibration_images(spec: Spec, mnist: Path, faces: Path, count: int = 512) -> np.ndarray:
    """Training images (never validation ones) to calibrate int8 activation ranges."""
    if spec.task == "digits":
        images = load_mnist(mnist)["train_images"][:count]
    else:
        images = keypoints.load_split(faces)[0][:count]
    return (images.astype(np.float32) / 255)[:, None]


def load_ms(path: Path, level: ort.GraphOptimizationLevel, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session(path, level)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def latency_ms(sess: ort.InferenceSession, images: np.ndarray, batch: int, repeats: int) -> float:
    x = images[:batch]
    sess.run(None, {"image": x})  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sess.run(None, {"image": x})
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def quantize(source: Path, target: Path, calibration: np.ndarray) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared))
        quantize_static(
            str(prepared), str(target), Calibration(calibration),
            quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        )  # fmt: skip


def evaluate_variants(spec: Spec, onnx_path: Path, scratch: Path, mnist: Path, faces: Path, mnist_validation: int) -> dict:
    data = validation_data(spec, mnist, faces, mnist_validation)
    offline, int8 = scratch / f"{spec.name}_ort.onnx", scratch / f"{spec.name}_int8.onnx"
    session(onnx_path, ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, save_to=offline)
    quantize(onnx_path, int8, calibration_images(spec, mnist, faces))
    level = ort.GraphOptimizationLevel
    variants = {
        "raw graph (no optimization)": (onnx_path, level.ORT_DISABLE_ALL),
        "fp32 as served (online ORT_ENABLE_ALL)": (onnx_path, level.ORT_ENABLE_ALL),
        "offline-optimized file (+ online)": (offline, level.ORT_ENABLE_ALL),
        "int8 QDQ (static, per-channel)": (int8, level.ORT_ENABLE_ALL),
    }
    rows = {}
    for label, (path, optimization) in variants.items():
        sess = session(path, optimization)
        rows[label] = {
            "load_ms": load_ms(path, optimization),
            "batch1_ms": latency_ms(sess, data.images, 1, 200),
            "batch64_ms": latency_ms(sess, data.images, 64, 30),
            **measure(spec, run_onnx(sess, data.images), data.targets),
        }
    return {"variants": rows, "int8_path": int8}


def int8_verdict(spec: Spec, rows: dict) -> tuple[bool, str]:
    base, int8 = rows["fp32 as served (online ORT_ENABLE_ALL)"], rows["int8 QDQ (static, per-channel)"]
    faster = int8["batch64_ms"] < base["batch64_ms"] * 0.9
    if spec.task == "digits":
        loss = base["val_accuracy"] - int8["val_accuracy"]
        accurate, change = loss <= MAX_DIGIT_LOSS, f"accuracy {-loss * 100:+.2f} points"
    else:
        loss = (base["val_score"] - int8["val_score"]) / base["val_score"]
        accurate, change = loss <= MAX_SCORE_LOSS, f"score {-loss:+.1%}"
    speed = f"batch-64 speed-up x{base['batch64_ms'] / int8['batch64_ms']:.2f}"
    keep = accurate and faster
    return keep, f"{'kept' if keep else 'not kept'}: {change}, {speed}"


def int8_entry(spec: Spec, models_dir: Path, result: dict, name: str) -> dict:
    """Copy a kept int8 model next to its fp32 original; its manifest entry."""
    target = models_dir / f"{name}_int8.onnx"
    target.write_bytes(result["int8_path"].read_bytes())
    row = result["variants"]["int8 QDQ (static, per-channel)"]
    base = result["variants"]["fp32 as served (online ORT_ENABLE_ALL)"]
    return {
        "file": target.name,
        "sha256": sha256_of(target),
        **describe(target),
        "task": spec.task,
        "variant_of": name,
        "quantization": "int8 QDQ, static, per-channel weights, calibrated on 512 training images",
        "metrics": {"onnxruntime": {k: v for k, v in row.items() if k.startswith("val_")}},
        "speedup_batch64": base["batch64_ms"] / row["batch64_ms"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--mnist", type=Path, default=Path("data/mnist"))
    parser.add_argument("--faces", type=Path, default=Path("data/faces/faces.npz"))
    parser.add_argument("--val-size", type=int, default=10_000)
    args = parser.parse_args(argv)
    report, kept = {"onnxruntime": ort.__version__, "models": {}}, {}
    try:
        manifest = read_manifest(args.models / "manifest.json")
        with tempfile.TemporaryDirectory() as scratch:
            for name in (n for n in SPECS if n in manifest["models"]):
                spec = SPECS[name]
                entry = verified_model(name, args.models / "manifest.json", manifest)
                print(f"measuring {name} ...", flush=True)
                result = evaluate_variants(spec, entry.path, Path(scratch), args.mnist, args.faces, args.val_size)
                keep, verdict = int8_verdict(spec, result["variants"])
                if keep:
                    kept[f"{name}_int8"] = int8_entry(spec, args.models, result, name)
                report["models"][name] = {"variants": result["variants"], "int8": verdict}
                for label, row in result["variants"].items():
                    figures = "  ".join(f"{k}={v:.4f}" for k, v in row.items())
                    print(f"  {label:<40} {figures}")
                print(f"  int8 {verdict}")
    except (InputError, ManifestError) as e:
        sys.exit(f"error: {e}")
    if kept:
        manifest_writer.write(args.models / "manifest.json", {**manifest["models"], **kept})
        print(f"kept {', '.join(kept)} in {args.models / 'manifest.json'}")
    write_json(args.models / "optimizations.json", report)
    print(f"wrote {args.models / 'optimizations.json'}")


if __name__ == "__main__":
    main()
