"""CPU speed-ups for the exported models, kept only when they earn it.

    python -m export.optimize --mnist ../shared/data/mnist --faces data/faces/faces.npz

For each model in the manifest, measures session load time, onnxruntime latency (batch 1 and 64)
and the validation metric of: the raw graph with no runtime optimization, the graph as the
service runs it (online optimization, ORT_ENABLE_ALL), an offline-optimized graph saved to disk
(what shipping one would save is load time), and int8 static quantization (QDQ, calibrated on
training images, never validation ones; settings in QUANTIZATION; the keypoint model's
convolutions only, `export.specs.Keypoints.quantized_ops`). An int8 model is kept only if
digits lose <= 0.1 points / keypoints <= 5% of the score, and it is at least 10% faster at batch
64: it is written as models/NAME_int8.onnx and listed in the manifest as NAME_int8 (the service
uses it with VISION_INT8=1). A shipped NAME_int8 that no longer earns it is removed, file and
manifest entry, with a line saying why. The figures go to models/optimizations.json.
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
from export.specs import SPECS, Data, Spec
from training.common import write_json
from vision.errors import InputError
from vision.manifest import ManifestError, read_manifest, sha256_of, verified_model
from vision.onnx_model import OnnxModel
from vision.signatures import INPUT_NAME

# How int8 models are made, in one place; int8_entry describes it in the manifest. uint8
# activations times int8 weights (U8S8) run on x86 with VPMADDUBSW where the CPU has AVX2 or
# AVX-512 but no VNNI: it adds pairs of u8*s8 products into an int16, which saturates
# (2 * 255 * 127 > 32767), so the same model lost accuracy there but not on VNNI CPUs (issue 16).
# reduce_range keeps weights to 7 bits (|w| <= 64, 2 * 255 * 64 < 32767), so nothing saturates:
# outputs came out bit-identical on this VNNI CPU and on an emulated AVX2 one (README, "CPU
# speed-ups"). U8U8 avoids it too but runs no VNNI kernel: 2-2.5x slower here, no faster than fp32.
QUANTIZATION = {
    "quant_format": QuantFormat.QDQ,
    "activation_type": QuantType.QUInt8,
    "weight_type": QuantType.QInt8,
    "per_channel": True,
    "reduce_range": True,
}
CALIBRATION_IMAGES = 512
INT8 = "int8 QDQ (static, per-channel)"  # the variant's label in the figures
FP32 = "fp32 as served (online ORT_ENABLE_ALL)"


def quantization_summary(ops: tuple[str, ...] | None = None) -> str:
    """The manifest's words for QUANTIZATION (of these op types only, if given)."""
    q = QUANTIZATION
    bits = "7-bit (reduce_range)" if q["reduce_range"] else "8-bit"
    per = "per-channel" if q["per_channel"] else "per-tensor"
    only = f" ({', '.join(ops)} only; the rest float32)" if ops else ""
    return (
        f"int8 {q['quant_format'].name}, static{only}: {q['activation_type'].name} activations, "
        f"{q['weight_type'].name} {per} weights in {bits}, calibrated on {CALIBRATION_IMAGES} training images"
    )


class Calibration(CalibrationDataReader):
    def __init__(self, images: np.ndarray, batch_size: int = 32):
        self._batches = iter([images[i : i + batch_size] for i in range(0, len(images), batch_size)])

    def get_next(self):
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch}


def load_ms(path: Path, optimization: str, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        OnnxModel(path, optimization=optimization)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def latency_ms(model: OnnxModel, images: np.ndarray, batch: int, repeats: int) -> float:
    x = images[:batch]
    model.outputs(x)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.outputs(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def quantize(source: Path, target: Path, calibration: np.ndarray, ops: tuple[str, ...] | None = None) -> None:
    """int8 QDQ of `source` (of these op types only, if given; the others stay float32)."""
    only = {"op_types_to_quantize": list(ops)} if ops else {}
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared))
        quantize_static(str(prepared), str(target), Calibration(calibration), **QUANTIZATION, **only)


def evaluate_variants(
    spec: Spec, onnx_path: Path, scratch: Path, mnist: Path, faces: Path, mnist_validation: int
) -> dict:
    where = Data(mnist, faces, mnist_validation)
    data = spec.validation(where)
    offline, int8 = scratch / f"{spec.name}_ort.onnx", scratch / f"{spec.name}_int8.onnx"
    OnnxModel(onnx_path, optimization="extended", optimized_copy=offline)
    # Training images, never validation ones, calibrate the int8 activation ranges.
    quantize(onnx_path, int8, spec.task.calibration(where, CALIBRATION_IMAGES), spec.task.quantized_ops)
    variants = {
        "raw graph (no optimization)": (onnx_path, "disabled"),
        FP32: (onnx_path, "all"),
        "offline-optimized file (+ online)": (offline, "all"),
        INT8: (int8, "all"),
    }
    rows = {}
    for label, (path, optimization) in variants.items():
        model = OnnxModel(path, optimization=optimization)
        rows[label] = {
            "load_ms": load_ms(path, optimization),
            "batch1_ms": latency_ms(model, data.images, 1, 200),
            "batch64_ms": latency_ms(model, data.images, 64, 30),
            **spec.measure(model.in_batches(data.images)[0], data.targets),
        }
    return {"variants": rows, "int8_path": int8}


def int8_verdict(spec: Spec, rows: dict) -> tuple[bool, str]:
    base, int8 = rows[FP32], rows[INT8]
    faster = int8["batch64_ms"] < base["batch64_ms"] * 0.9
    accurate, change = spec.task.int8_change(base, int8)
    speed = f"batch-64 speed-up x{base['batch64_ms'] / int8['batch64_ms']:.2f}"
    keep = accurate and faster
    return keep, f"{'kept' if keep else 'not kept'}: {change}, {speed}"


def int8_entry(spec: Spec, models_dir: Path, result: dict, name: str) -> dict:
    """Copy a kept int8 model next to its fp32 original; its manifest entry."""
    target = models_dir / f"{name}_int8.onnx"
    target.write_bytes(result["int8_path"].read_bytes())
    row, base = result["variants"][INT8], result["variants"][FP32]
    return {
        "file": target.name,
        "sha256": sha256_of(target),
        **describe(target),
        "task": spec.task.name,
        "variant_of": name,
        "quantization": quantization_summary(spec.task.quantized_ops),
        "metrics": {"onnxruntime": {k: v for k, v in row.items() if k.startswith("val_")}},
        "speedup_batch64": base["batch64_ms"] / row["batch64_ms"],
    }


def drop_variant(models_dir: Path, models: dict, name: str, why: str) -> None:
    """Remove a shipped int8 variant, file and manifest entry, and say so."""
    path = models_dir / models.pop(name)["file"]
    path.unlink(missing_ok=True)
    print(f"dropped {name} ({path}) and its manifest entry: {why}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--mnist", type=Path, default=Path("data/mnist"))
    parser.add_argument("--faces", type=Path, default=Path("data/faces/faces.npz"))
    parser.add_argument("--val-size", type=int, default=10_000)
    args = parser.parse_args(argv)
    report, kept, dropped = (
        {"onnxruntime": ort.__version__, "quantization": quantization_summary(), "models": {}},
        {},
        {},
    )
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
                elif f"{name}_int8" in manifest["models"]:
                    dropped[f"{name}_int8"] = f"re-quantized int8 {verdict}"
                report["models"][name] = {"variants": result["variants"], "int8": verdict}
                for label, row in result["variants"].items():
                    figures = "  ".join(f"{k}={v:.4f}" for k, v in row.items())
                    print(f"  {label:<40} {figures}")
                print(f"  int8 {verdict}")
    except (InputError, ManifestError) as e:
        sys.exit(f"error: {e}")
    if kept or dropped:
        models = {**manifest["models"], **kept}
        for name, why in dropped.items():
            drop_variant(args.models, models, name, why)
        manifest_writer.write(args.models / "manifest.json", models)
    if kept:
        print(f"kept {', '.join(kept)} in {args.models / 'manifest.json'}")
    write_json(args.models / "optimizations.json", report)
    print(f"wrote {args.models / 'optimizations.json'}")


if __name__ == "__main__":
    main()
