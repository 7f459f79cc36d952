"""Several keypoint checkpoints end to end, side by side: which training run is ahead on faces no
run trained on, before any of them is given a confidence layer and exported.

    python -m training.compare_checkpoints runs/kp_a/keypoints.pt runs/kp_b/keypoints.pt \\
        --faces ../shared/data/faces --faces300w ../shared/data/faces300w --mtfl ../shared/data/mtfl5

Each checkpoint runs in PyTorch inside `training.evaluate_faces`' pipeline (the same held-out
frames, detections, crops and measures as the exported model's evaluation; the parity gate holds
the ONNX file to the checkpoint's points within 1e-4). Prints one line per checkpoint: NME and
faces over 10% per source, and MTFL's by head pose; `--out` writes every report as JSON. With
`--fit-offsets`, each is corrected as `evaluate_faces --fit-offsets` corrects a model: what is left
is accuracy, not which annotators' conventions a model learned.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from training import common, evaluate_faces, models
from vision.detectors import YUNET_MODEL
from vision.errors import InputError

SOURCES = ("youtube", "helen", "afw", "mtfl")
HEADS = ("frontal", "turned", "profile")


def torch_model(path: Path, threads: int):
    """A checkpoint as `training.evaluate_faces` calls a model: crops in, its outputs as a list."""
    torch.set_num_threads(threads)
    model = models.model_from_checkpoint(common.load_checkpoint(path), expected="keypoints")

    @torch.no_grad()
    def run(x: np.ndarray) -> list[np.ndarray]:
        return [t.numpy() for t in model.outputs(torch.from_numpy(x))]

    return run


def row(label: str, report: dict) -> str:
    cells = [f"{report[s]['nme']:.2%} / {report[s]['over_10_percent']:.1%}" for s in SOURCES if s in report]
    if "mtfl" in report:
        cells += [f"{report['mtfl']['by_head'][h]['nme']:.2%}" for h in HEADS if h in report["mtfl"]["by_head"]]
    return f"{label:<40} " + " | ".join(cells)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.compare_checkpoints",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("checkpoints", type=Path, nargs="+", help="keypoint checkpoints (keypoints.pt)")
    parser.add_argument("--split", type=Path, default=Path("data/faces/faces.npz"), help="from training.prepare_faces")
    parser.add_argument("--faces", type=Path, help="the YouTube frames folder")
    parser.add_argument("--faces300w", type=Path, help="the Helen/AFW photos folder")
    parser.add_argument("--mtfl", type=Path, help="MTFL's photos: its held-out part")
    parser.add_argument(
        "--fit-offsets",
        action="store_true",
        help="correct each as evaluate_faces --fit-offsets does: by its offsets to each source's annotators",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads")
    parser.add_argument("--out", type=Path, help="write the reports as JSON here")
    args = parser.parse_args(argv)
    folders = {name: path for name, path in (("youtube", args.faces), ("300w", args.faces300w)) if path}
    if not folders and not args.mtfl:
        parser.error("give --faces, --faces300w and/or --mtfl: the folders the held-out frames come from")
    try:
        frames = evaluate_faces.held_out_frames(args.split, folders) if folders else []
        frames += evaluate_faces.mtfl_photos(args.mtfl) if args.mtfl else []
        detector = evaluate_faces.detector_named("yunet", YUNET_MODEL, args.threads)
        reports = {}
        for path in args.checkpoints:
            model = torch_model(path, args.threads)
            predict = evaluate_faces.pipeline_predictor(model)
            if args.fit_offsets:
                predict = evaluate_faces.offset_corrected(predict, evaluate_faces.model_offsets(model, args.split))
            reports[str(path)] = evaluate_faces.evaluate(frames, detector, predict)
    except (InputError, OSError, KeyError) as e:
        sys.exit(f"error: {e}")
    heads = " | ".join(f"mtfl {h}" for h in HEADS) if args.mtfl else ""
    print(f"{'checkpoint':<40} NME / over 10%: " + " | ".join(SOURCES) + (f" | {heads}" if heads else ""))
    for label, report in reports.items():
        print(row(label, report))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(reports, indent=2) + "\n")


if __name__ == "__main__":
    main()
