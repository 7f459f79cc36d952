"""Give a trained keypoint model a confidence per point: fit its spread layer, keep the rest.

    python -m training.keypoint_confidence --checkpoint models/keypoints.pt --data data/faces/faces.npz

The trunk and the keypoints stay exactly as they are. The model sees `--passes` augmented copies of
every training crop (the trainer's own augmentation: what a detector's box and a camera do to a
face), and a linear layer learns, from what the head saw (`KeypointNet.both_ways`), the spread σ of
each point's error: by maximum likelihood under a 2-D isotropic Gaussian, log σ for each point. The
checkpoint is written back with `confidence: true` in its model_args and the layer's weights;
`python -m export` then exports both outputs. How well the confidence ranks errors on faces the
model never saw: `python -m training.evaluate_faces` (its "by confidence" table, docs/keypoints.md).
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from training import keypoints as trainer
from training.common import load_checkpoint, save_checkpoint, seed_everything
from training.faces_data import load_training
from training.models import build, model_from_checkpoint
from vision.errors import InputError
from vision.signatures import CROP_SIZE


def with_spread_layer(checkpoint: dict) -> nn.Module:
    """The checkpoint's keypoint model with a fresh spread layer (and flip averaging, which it reads)."""
    trained = model_from_checkpoint(checkpoint, expected="keypoints")
    model_args = {**checkpoint["model_args"], "flip_tta": True, "confidence": True}
    model = build("keypoints", model_args)
    missing, unexpected = model.load_state_dict(trained.state_dict(), strict=False)
    if unexpected or any(not k.startswith("spread.") for k in missing):
        raise InputError(f"the checkpoint does not fit a keypoint model with a spread layer: {missing + unexpected}")
    return model.eval()


@torch.no_grad()
def errors_and_inputs(model: nn.Module, data: Path, passes: int, seed: int, progress: bool):
    """(N, 15) error of each point in crop pixels (NaN where the face has no label for it: MTFL's
    ten) and (N, F) what the spread layer reads, over `passes` augmented copies of every training crop."""
    split = load_training(data)
    config, rng = trainer.Config(), np.random.default_rng(seed)
    errors, inputs = [], []
    steps = [(p, s) for p in range(passes) for s in range(0, len(split.train_context), 256)]
    for _, start in tqdm(steps, desc="augmented crops", unit="batch", disable=not progress):
        idx = range(start, min(start + 256, len(split.train_context)))
        pairs = [trainer.augment(split.train_context[i], split.train_points[i], config, rng) for i in idx]
        x = torch.from_numpy(np.stack([p[0] for p in pairs])[:, None])
        target = torch.from_numpy(np.stack([p[1] for p in pairs]))
        points, seen = model.both_ways(x)
        errors.append((points.reshape(target.shape) - target).norm(dim=-1) * (CROP_SIZE / 2))
        inputs.append(seen)
    return torch.cat(errors), torch.cat(inputs)


def fit_spread(errors: torch.Tensor, inputs: torch.Tensor, epochs: int, progress: bool) -> tuple[nn.Linear, float]:
    """A linear layer inputs -> log σ per point, by Gaussian maximum likelihood (Adam on the
    standardized inputs, folded back into the weights); and its final mean negative log-likelihood."""
    mean, std = inputs.mean(0), inputs.std(0) + 1e-6
    standardized = (inputs - mean) / std
    layer = nn.Linear(inputs.shape[1], errors.shape[1])
    nn.init.zeros_(layer.weight)
    nn.init.constant_(layer.bias, float(errors.nanmean().log()))
    optimizer = torch.optim.Adam(layer.parameters(), lr=1e-2)
    for _ in tqdm(range(epochs), desc="fitting the spread", unit="epoch", disable=not progress):
        for batch in torch.randperm(len(errors)).split(4096):
            loss = gaussian_nll(layer(standardized[batch]), errors[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        final = gaussian_nll(layer(standardized), errors).item()
        folded = nn.Linear(inputs.shape[1], errors.shape[1])
        folded.weight.copy_(layer.weight / std)
        folded.bias.copy_(layer.bias - (layer.weight * (mean / std)).sum(1))
    return folded, final


def gaussian_nll(log_sigma: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of a 2-D error of length `distance` under N(0, σ²I), constants dropped,
    over the labelled points (a NaN distance: a point an MTFL face has no label for)."""
    labelled = ~torch.isnan(distance)
    log_sigma, distance = log_sigma[labelled], distance[labelled]
    return (2 * log_sigma + 0.5 * distance**2 * torch.exp(-2 * log_sigma)).mean()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.keypoint_confidence",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", type=Path, default=Path("models/keypoints.pt"), help="a trained keypoint model")
    parser.add_argument("--data", type=Path, default=Path("data/faces/faces.npz"), help="from training.prepare_faces")
    parser.add_argument("--out", type=Path, help="where to write the checkpoint (default: over --checkpoint)")
    parser.add_argument("--passes", type=int, default=6, help="augmented copies of each training crop")
    parser.add_argument("--epochs", type=int, default=200, help="passes of the fit over them")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if min(args.passes, args.epochs, args.threads) < 1:
        parser.error("--passes, --epochs and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    progress = not args.no_progress
    try:
        checkpoint = load_checkpoint(args.checkpoint)
        model = with_spread_layer(checkpoint)
        errors, inputs = errors_and_inputs(model, args.data, args.passes, args.seed, progress)
    except (InputError, OSError, KeyError) as e:
        sys.exit(f"error: {e}")
    model.spread, nll = fit_spread(errors, inputs, args.epochs, progress)
    fit = {
        "crops": len(errors),
        "mean_error_px": round(errors.nanmean().item(), 3),
        "nll": round(nll, 4),
        "command": "python -m training.keypoint_confidence " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    metrics = {**checkpoint.get("metrics", {}), "confidence_fit": fit}
    out = args.out or args.checkpoint
    save_checkpoint(
        out, "keypoints", {**checkpoint["model_args"], "confidence": True}, checkpoint["config"], model, metrics
    )
    print(f"{out}: spread layer fitted on {fit['crops']} crops (mean error {fit['mean_error_px']} px, NLL {nll:.3f})")


if __name__ == "__main__":
    main()
