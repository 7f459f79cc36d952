"""Facial keypoints: a small CNN that regresses the 15 course keypoints from a 96x96 face crop.

    python -m training.keypoints --data data/faces/faces.npz --out models

Input (N, 1, 96, 96) float32 pixels in [0, 1]; output (N, 30) = x0, y0, x1, y1, ... in the course
order, normalized to [-1, 1] as (crop_pixel - 48) / 48. The pixel normalization lives inside
`forward`, so the exported graph takes raw [0, 1] pixels. Validation is identity-disjoint (the
`validation` mask written by `training.prepare_faces`).
"""

import argparse
import dataclasses
import hashlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from training import common
from vision import draw, faces, keypoints
from vision.errors import InputError

MODEL_NAME = "keypoints"
SIZE = faces.CROP_SIZE
FLIP = list(keypoints.FLIP_PERMUTATION)


@dataclass
class Config:
    data: str = "data/faces/faces.npz"
    out: str = "models"
    epochs: int = 150
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 1
    widths: tuple = (24, 32, 64, 128, 256)  # one conv stage per width, each halving the resolution
    hidden: int = 256
    dropout: float = 0.1
    loss: str = "wing"  # wing | l1 | mse
    flip_tta: bool = True  # average with the mirrored crop inside forward (if it earns its cost)
    rotate: float = 15.0  # degrees, uniform +-
    scale: float = 0.1  # relative, uniform +-
    shift: float = 0.06  # share of the crop side, uniform +-
    progress: bool = True
    init: str = ""  # start from this checkpoint's weights (same architecture): a fine-tuning run


# --- model -------------------------------------------------------------------------------------


def conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class KeypointNet(nn.Module):
    """Five strided conv stages (96 -> 3) and a small FC head.

    The head flattens the 3x3 map instead of pooling it globally: where a feature fires is exactly
    what a coordinate regressor needs.
    """

    def __init__(self, widths=(24, 32, 64, 128, 256), hidden=256, dropout=0.1, flip_tta=False):
        super().__init__()
        stages, cin = [], 1
        for i, w in enumerate(widths):
            # The first stage is one conv: at 48x48 a second one would cost as much as the rest.
            stages.append(nn.Sequential(conv_bn(cin, w, 2)) if i == 0 else nn.Sequential(conv_bn(cin, w, 2), conv_bn(w, w)))
            cin = w
        self.features = nn.Sequential(*stages)
        side = SIZE >> len(widths)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin * side * side, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, 2 * keypoints.NUM_KEYPOINTS),
        )  # fmt: skip
        self.flip_tta = flip_tta
        # Pixel statistics of the training crops; set by `train`, saved in the state_dict.
        self.register_buffer("pixel_mean", torch.tensor(0.5))
        self.register_buffer("pixel_std", torch.tensor(0.25))
        self.register_buffer("flip_index", torch.tensor(FLIP))

    def regress(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features((x - self.pixel_mean) / self.pixel_std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.regress(x)
        if not self.flip_tta or self.training:
            return y
        # Mirror the crop, predict, and map back: pixel x -> 95 - x is n -> -n - 1/48 normalized,
        # and left/right points swap.
        mirrored = self.regress(torch.flip(x, dims=[3])).reshape(-1, keypoints.NUM_KEYPOINTS, 2)
        mirrored = mirrored.index_select(1, self.flip_index)
        back = torch.stack([-mirrored[..., 0] - 2.0 / SIZE, mirrored[..., 1]], dim=-1).reshape(y.shape)
        return (y + back) / 2


def build_model(config: Config) -> KeypointNet:
    return KeypointNet(tuple(config.widths), config.hidden, config.dropout, config.flip_tta)


def model_from_checkpoint(checkpoint: dict) -> KeypointNet:
    """A checkpoint dict (common.load_checkpoint) -> the model in eval mode."""
    if checkpoint.get("model") != MODEL_NAME:
        raise InputError(f"not a {MODEL_NAME} checkpoint (model={checkpoint.get('model')!r})")
    known = {f.name for f in dataclasses.fields(Config)}
    config = Config(**{k: v for k, v in checkpoint["config"].items() if k in known})
    model = build_model(config)
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


# --- metrics -----------------------------------------------------------------------------------


def _points(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(len(a), keypoints.NUM_KEYPOINTS, 2)


def course_score(pred, target) -> float:
    """The course's 1 / (2 MSE), MSE over every normalized coordinate of every sample."""
    return float(1.0 / (2.0 * np.mean((_points(pred) - _points(target)) ** 2)))


def nme(pred, target) -> float:
    """Mean point-to-point error over the outer-eye-corner distance, per sample, then averaged."""
    pred, target = _points(pred), _points(target)
    left, right = keypoints.OUTER_EYE_CORNERS
    ocular = np.linalg.norm(target[:, left] - target[:, right], axis=-1)
    return float(np.mean(np.linalg.norm(pred - target, axis=-1).mean(axis=1) / ocular))


def keypoint_loss(kind: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if kind == "mse":
        return nn.functional.mse_loss(pred, target)
    # L1 and wing in crop pixels, where wing's constants (w=4, eps=1) mean something.
    error = (pred - target).abs() * (SIZE / 2)
    if kind == "l1":
        return error.mean()
    if kind == "wing":
        w, eps = 4.0, 1.0
        c = w - w * np.log(1 + w / eps)
        return torch.where(error < w, w * torch.log1p(error / eps), error - c).mean()
    raise ValueError(f"unknown loss {kind!r}")


# --- data --------------------------------------------------------------------------------------


def load_split(npz_path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """faces.npz -> (train_images, train_kp, val_images, val_kp): uint8 (N,96,96), float32 (N,15,2)."""
    path = Path(npz_path)
    if not path.is_file():
        raise InputError(f"{path}: no such file (make it with python -m training.prepare_faces)")
    try:
        with np.load(path) as data:
            images, points, val = data["images"], data["keypoints"].astype(np.float32), data["validation"]
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"{path}: not a faces.npz from training.prepare_faces ({e})") from None
    if images.shape[1:] != (SIZE, SIZE) or points.shape[1:] != (keypoints.NUM_KEYPOINTS, 2):
        raise InputError(f"{path}: unexpected shapes {images.shape} / {points.shape}")
    if val.all() or not val.any():
        raise InputError(f"{path}: the validation mask leaves no train or no validation frames")
    return images[~val], points[~val], images[val], points[val]


def flip(image: np.ndarray, points_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror a crop and its (15, 2) crop-pixel keypoints; left and right points trade places."""
    mirrored = points_px.copy()
    mirrored[:, 0] = (SIZE - 1) - mirrored[:, 0]
    return image[:, ::-1].copy(), mirrored[FLIP]


def augment(image: np.ndarray, points: np.ndarray, config: Config, rng: np.random.Generator):
    """One uint8 crop and its normalized keypoints -> float32 [0,1] crop and keypoints, jittered
    the way a detector box and a camera would jitter them."""
    px = faces.denormalize(points)
    if rng.random() < 0.5:
        image, px = flip(image, px)
    # One 2x3 matrix moves pixels and keypoints alike: rotation and scale about the crop center,
    # then a shift. cv2 maps source (x, y) to M @ (x, y, 1), pixel centers at integers.
    center = ((SIZE - 1) / 2, (SIZE - 1) / 2)
    angle = rng.uniform(-config.rotate, config.rotate)
    matrix = cv2.getRotationMatrix2D(center, angle, 1 + rng.uniform(-config.scale, config.scale))
    matrix[:, 2] += rng.uniform(-config.shift, config.shift, 2) * SIZE
    image = cv2.warpAffine(image, matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    px = px @ matrix[:, :2].T + matrix[:, 2]
    x = image.astype(np.float32) / 255
    if rng.random() < 0.2:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.5, 1.2))
    x = (x - 0.5) * rng.uniform(0.7, 1.3) + 0.5 + rng.uniform(-0.15, 0.15)
    if rng.random() < 0.3:
        x = x + rng.normal(0, rng.uniform(0.01, 0.04), x.shape).astype(np.float32)
    return np.clip(x, 0, 1), faces.normalize(px).astype(np.float32)


def batches(images, points, config: Config, rng: np.random.Generator, train: bool):
    order = rng.permutation(len(images)) if train else np.arange(len(images))
    for start in range(0, len(order), config.batch_size):
        idx = order[start : start + config.batch_size]
        if train:
            pairs = [augment(images[i], points[i], config, rng) for i in idx]
            x, y = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
        else:
            x, y = images[idx].astype(np.float32) / 255, points[idx]
        yield torch.from_numpy(x[:, None]), torch.from_numpy(y.reshape(len(idx), -1))


# --- training ----------------------------------------------------------------------------------


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """uint8 (N, 96, 96) crops -> (N, 30) normalized predictions."""
    model.eval()
    out = [model(torch.from_numpy(images[i : i + batch_size, None].astype(np.float32) / 255)) for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy()


def evaluate(model: nn.Module, images, points, config: Config) -> dict:
    pred = predict(model, images)
    target = points.reshape(len(points), -1)
    loss = keypoint_loss(config.loss, torch.from_numpy(pred), torch.from_numpy(target)).item()
    return {"val_loss": loss, "val_score": course_score(pred, target), "val_nme": nme(pred, target)}


def save_grid(model, images, points, path: Path, count: int = 32) -> None:
    """Validation crops at 2x: true keypoints as white rings, predictions in part colors."""
    picks = np.linspace(0, len(images) - 1, min(count, len(images))).astype(int)
    pred = _points(predict(model, images[picks]))
    tiles = []
    for i, p in zip(picks, pred):
        tile = cv2.resize(cv2.cvtColor(images[i], cv2.COLOR_GRAY2BGR), None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
        for x, y in (faces.denormalize(points[i]) + 0.5) * 2 - 0.5:
            cv2.circle(tile, (int(round(x)), int(round(y))), 4, (255, 255, 255), 1, cv2.LINE_AA)
        draw.draw_keypoints(tile, (faces.denormalize(p) + 0.5) * 2 - 0.5)
        tiles.append(tile)
    cv2.imwrite(str(path), draw.contact_sheet(tiles, columns=8))


def train(config: Config, command: str = "") -> dict:
    torch.set_num_threads(config.threads)
    common.seed_everything(config.seed)
    rng = np.random.default_rng(config.seed)
    train_images, train_points, val_images, val_points = load_split(config.data)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)

    mean_shape = train_points.mean(axis=0, keepdims=True).repeat(len(val_points), axis=0)
    baseline = {"baseline_score": course_score(mean_shape, val_points), "baseline_nme": nme(mean_shape, val_points)}

    model = build_model(config)
    model.pixel_mean.fill_(float(train_images.mean() / 255))
    model.pixel_std.fill_(float(train_images.std() / 255))
    if config.init:
        model.load_state_dict(model_from_checkpoint(common.load_checkpoint(config.init)).state_dict())
    params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = -(-len(train_images) // config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=config.epochs * steps, pct_start=0.15)
    print(
        f"{len(train_images)} train / {len(val_images)} validation crops, {params:,} parameters; "
        f"mean-shape baseline: score {baseline['baseline_score']:.1f}, NME {baseline['baseline_nme']:.2%}",
        flush=True,
    )

    history, started = [], time.time()
    for epoch in range(1, config.epochs + 1):
        model.train()
        total, seen = 0.0, 0
        bar = tqdm(batches(train_images, train_points, config, rng, True), total=steps, desc=f"epoch {epoch}/{config.epochs}", disable=not config.progress, file=sys.stderr, mininterval=1 if sys.stderr.isatty() else 30)  # fmt: skip
        for x, y in bar:
            loss = keypoint_loss(config.loss, model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total, seen = total + loss.item() * len(x), seen + len(x)
            bar.set_postfix(loss=f"{total / seen:.4f}")
        row = {"epoch": epoch, "train_loss": total / seen, **evaluate(model, val_images, val_points, config)}
        history.append(row)
        print(
            f"epoch {epoch}: train loss {row['train_loss']:.4f}, val loss {row['val_loss']:.4f}, "
            f"score {row['val_score']:.1f}, NME {row['val_nme']:.2%} ({time.time() - started:.0f}s)",
            flush=True,
        )
    train_seconds = time.time() - started

    # Flip averaging is decided after training, on the trained weights: report both.
    model.flip_tta = False
    single = evaluate(model, val_images, val_points, config)
    model.flip_tta = True
    flipped = evaluate(model, val_images, val_points, config)
    model.flip_tta = config.flip_tta
    final = flipped if config.flip_tta else single
    metrics = {
        **baseline,
        "val_score": final["val_score"],
        "val_nme": final["val_nme"],
        "val_score_no_flip": single["val_score"],
        "val_nme_no_flip": single["val_nme"],
        "val_score_flip": flipped["val_score"],
        "val_nme_flip": flipped["val_nme"],
        "params": params,
        "train_seconds": round(train_seconds, 1),
        "threads": config.threads,
        "epochs": config.epochs,
        "command": command,
        "history": history,
    }
    model.eval()
    # The config names the data; its digest and split sizes pin down which faces.npz it was.
    data = {"data_sha256": hashlib.sha256(Path(config.data).read_bytes()).hexdigest(), "train_frames": len(train_images), "val_frames": len(val_images)}
    metrics.update(data)
    common.save_checkpoint(out / f"{MODEL_NAME}.pt", MODEL_NAME, {**dataclasses.asdict(config), **data}, model, {k: v for k, v in metrics.items() if k != "history"})
    metrics["checkpoint_mb"] = round((out / f"{MODEL_NAME}.pt").stat().st_size / 2**20, 3)
    common.write_json(out / f"{MODEL_NAME}.json", metrics)
    common.plot_curves(
        [{k: v for k, v in row.items() if k != "val_loss" or config.loss != "mse"} for row in history],
        out / f"{MODEL_NAME}_curves.png",
        f"keypoints: score {metrics['val_score']:.0f} (baseline {baseline['baseline_score']:.0f})",
    )
    save_grid(model, val_images, val_points, out / f"{MODEL_NAME}_val_grid.png")
    print(
        f"validation: score {metrics['val_score']:.1f}, NME {metrics['val_nme']:.2%} "
        f"(no flip: {single['val_score']:.1f}, {single['val_nme']:.2%}); trained in {train_seconds:.0f}s; "
        f"wrote {out / MODEL_NAME}.pt/.json/_curves.png/_val_grid.png",
        flush=True,
    )
    return metrics


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(
        prog="python -m training.keypoints", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    defaults = Config()
    for field in dataclasses.fields(Config):
        flag, default = "--" + field.name.replace("_", "-"), getattr(defaults, field.name)
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        elif isinstance(default, tuple):
            parser.add_argument(flag, type=int, nargs="+", default=default, help=f"default {' '.join(map(str, default))}")
        else:
            parser.add_argument(flag, type=type(default), default=default, help=f"default {default}")
    args = parser.parse_args(argv)
    return Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in vars(args).items()})


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    command = "python -m training.keypoints " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        train(config, command.strip())
    except InputError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
