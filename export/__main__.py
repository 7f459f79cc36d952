"""Export every shipped checkpoint to ONNX, gate it on parity, and write the manifest.

    python -m export --mnist ../shared/data/mnist --faces data/faces/faces.npz
    python -m export --check      # re-gate the ONNX files in models/ and check the manifest

The gate compares PyTorch (eval mode) with onnxruntime on real validation data at batch sizes
1, 7 and 64, and on the whole validation split: it fails on any output difference above 1e-4,
any changed digit prediction, or a metric moved by more than 0.01 points / 0.1% of the score.
"""

import argparse
import shlex
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import onnx

from export import convert, parity
from export import manifest as manifest_writer
from export.specs import SPECS, Data
from training.mnist import VALIDATION_SIZE
from vision.errors import InputError
from vision.manifest import ManifestError, read_manifest, verified_model


def export_all(
    names: list[str], models_dir: Path, mnist: Path, faces: Path, mnist_validation: int
) -> list[parity.Parity]:
    """Export into a scratch folder; only when every model passes do files reach `models_dir`."""
    results, entries = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            spec = SPECS[name]
            model, checkpoint = spec.rebuild(models_dir)
            onnx_path = Path(scratch) / spec.onnx
            print(f"exporting {name} ...", flush=True)
            convert.to_onnx(model, spec, onnx_path)
            data = spec.validation(Data(mnist, faces, mnist_validation))
            results.append(parity.check_parity(spec, model, onnx_path, data))
            entries[name] = manifest_writer.entry(
                spec, onnx_path, models_dir / spec.checkpoint, checkpoint, results[-1], data
            )
        if all(r.passed for r in results):
            for name in names:
                shutil.copyfile(Path(scratch) / SPECS[name].onnx, models_dir / SPECS[name].onnx)
            rebuild = optimize_command(models_dir, mnist, faces, mnist_validation)
            previous = _previous_entries(models_dir / "manifest.json", names, models_dir, rebuild)
            manifest_writer.write(models_dir / "manifest.json", {**previous, **entries})
    return results


def optimize_command(models_dir: Path, mnist: Path, faces: Path, mnist_validation: int = VALIDATION_SIZE) -> str:
    """The command that remakes the int8 variants, with the paths this export was given."""
    models = [] if Path(models_dir) == Path("models") else ["--models", str(models_dir)]
    val_size = [] if mnist_validation == VALIDATION_SIZE else ["--val-size", str(mnist_validation)]
    paths = ["--mnist", str(mnist), "--faces", str(faces)]
    return shlex.join(["python", "-m", "export.optimize", *models, *paths, *val_size])


def _previous_entries(path: Path, exported: list[str], models_dir: Path, rebuild: str) -> dict:
    """The manifest's other entries, less variants (int8) made from a model just re-exported:
    they no longer match it, so they go, files included, each with a line saying so and how to
    remake them, until export.optimize does."""
    try:
        entries = read_manifest(path)["models"]
    except ManifestError:
        return {}
    stale = {name for name, entry in entries.items() if entry.get("variant_of") in exported}
    for name in sorted(stale):
        (models_dir / entries[name]["file"]).unlink(missing_ok=True)
        print(
            f"dropped {name} ({models_dir / entries[name]['file']}): made from the previous "
            f"{entries[name]['variant_of']}, stale now; rebuild it with: {rebuild}"
        )
    return {name: entry for name, entry in entries.items() if name not in stale}


def check_all(
    names: list[str], models_dir: Path, mnist: Path, faces: Path, mnist_validation: int
) -> list[parity.Parity]:
    manifest_path = models_dir / "manifest.json"
    manifest = read_manifest(manifest_path)
    results = []
    for name in names:
        spec = SPECS[name]
        entry = verified_model(name, manifest_path, manifest)
        convert.check(entry.path)
        model, _ = spec.rebuild(models_dir)
        results.append(
            parity.check_parity(spec, model, entry.path, spec.validation(Data(mnist, faces, mnist_validation)))
        )
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=Path("models"), help="checkpoints in, ONNX + manifest out")
    parser.add_argument("--mnist", type=Path, default=Path("data/mnist"), help="MNIST IDX folder (validation split)")
    parser.add_argument(
        "--faces", type=Path, default=Path("data/faces/faces.npz"), help="crops from training.prepare_faces"
    )
    parser.add_argument(
        "--val-size", type=int, default=VALIDATION_SIZE, help="digits validate on the last N training images"
    )
    parser.add_argument("--only", nargs="+", choices=sorted(SPECS), help="just these models")
    parser.add_argument("--check", action="store_true", help="gate the existing ONNX files; export nothing")
    args = parser.parse_args(argv)

    names = args.only or [n for n in SPECS if (args.models / SPECS[n].checkpoint).exists()]
    if not names:
        sys.exit(f"error: no checkpoints ({', '.join(s.checkpoint for s in SPECS.values())}) in {args.models}")
    warnings.filterwarnings("ignore")  # the exporter's deprecation chatter hides the table
    try:
        run = check_all if args.check else export_all
        results = run(names, args.models, args.mnist, args.faces, args.val_size)
    except (InputError, ManifestError, FileNotFoundError, onnx.checker.ValidationError) as e:
        sys.exit(f"error: {e}")
    print(parity.table(results))
    if not all(r.passed for r in results):
        sys.exit("error: parity gate failed" + ("" if args.check else "; models/ left unchanged"))
    print("parity gate passed" + ("" if args.check else f"; wrote {args.models / 'manifest.json'}"))


if __name__ == "__main__":
    main()
