"""Facial keypoints: training the small CNN that regresses the 15 course keypoints from a 96x96 crop.

    python -m training.keypoints --data data/faces/faces.npz --out models

The network is `training.models.KeypointNet` ("keypoints"): input (N, 1, 96, 96) float32 pixels
in [0, 1]; output (N, 30) = x0, y0, x1, y1, ... in the course order, normalized to [-1, 1] as
(crop_pixel - 48) / 48. The metrics (course score, NME) are in `vision.metrics`. Validation is
identity-disjoint (the `validation` mask written by `training.prepare_faces`).
"""

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

from training import common, models
from training import teachers as teachers_module
from training.common import option
from training.faces_data import load_training
from vision import draw, keypoints
from vision.crop import denormalize, model_input, normalize
from vision.errors import InputError
from vision.metrics import as_points, course_score, nme
from vision.signatures import CROP_SIZE

MODEL_NAME = "keypoints"
SIZE = CROP_SIZE
FLIP = list(keypoints.FLIP_PERMUTATION)
LOSSES = ("wing", "l1", "mse")


@dataclass
class Config:
    """One training run; `resolved()` checks it. The one model has one set of defaults, all here."""

    data: str = option("data/faces/faces.npz", "crops from python -m training.prepare_faces")
    out: str = option("models", "folder for keypoints.pt, .json, _curves.png and _val_grid.png")
    epochs: int = option(150, "epochs")
    batch_size: int = option(32, "batch size")
    lr: float = option(3e-3, "one-cycle peak learning rate (AdamW); 0 keeps the weights as they start")
    weight_decay: float = option(1e-4, "AdamW weight decay")
    seed: int = option(0, "seed of the initialization, data order and augmentation")
    threads: int = option(1, "torch CPU threads")
    widths: tuple[int, ...] = option(
        (24, 32, 64, 128, 256), "model: one conv stage per width, each halving the resolution", metavar="W"
    )
    head: str = option("fc", "model: the head on the conv trunk", choices=models.KEYPOINT_HEADS)
    hidden: int = option(256, "model: hidden units of the FC head")
    heatmap_width: int = option(64, "model: channels of the heatmap head's top-down path (half that at 24x24)")
    dropout: float = option(0.1, "model: dropout before the head")
    loss: str = option("wing", "training loss", choices=LOSSES)
    flip_tta: bool = option(True, "model: average with the mirrored crop inside forward (if it earns its cost)")
    # Augmentation, per crop: what a detector box and a camera would do to it.
    flip_p: float = option(0.5, "augmentation: probability of mirroring the crop")
    rotate: float = option(12.0, "augmentation: residual rotation after eye alignment, uniform +- degrees")
    scale: float = option(0.1, "augmentation: scale, uniform +- relative")
    shift: float = option(0.06, "augmentation: shift, uniform +- share of the crop side")
    blur_p: float = option(0.2, "augmentation: probability of a Gaussian blur")
    blur_sigma: tuple[float, float] = option((0.5, 1.2), "augmentation: blur sigma range, pixels", metavar="SIGMA")
    contrast: tuple[float, float] = option(
        (0.7, 1.3), "augmentation: contrast factor range, about mid-grey", metavar="FACTOR"
    )
    brightness: float = option(0.15, "augmentation: brightness offset, uniform +- (pixels in [0, 1])")
    noise_p: float = option(0.3, "augmentation: probability of Gaussian pixel noise")
    noise_sigma: tuple[float, float] = option(
        (0.01, 0.04), "augmentation: noise sigma range (pixels in [0, 1])", metavar="SIGMA"
    )
    jpeg_p: float = option(0.3, "augmentation: probability of a JPEG round trip")
    jpeg_quality: tuple[int, int] = option((30, 90), "augmentation: JPEG quality range", metavar="Q")
    progress: bool = option(True, "progress bar on stderr")
    init: str | None = option(None, "start from this checkpoint's weights (same architecture): a fine-tuning run")
    repeat_photos: int = option(
        1, "data: times each epoch shows every photo crop (Helen, AFW; one person each), YouTube frames once"
    )
    mtfl_per_epoch: int = option(
        0, "data: MTFL faces (five points labelled; faces.npz from prepare_faces --mtfl) drawn afresh each epoch"
    )
    celeba_per_epoch: int = option(
        0, "data: CelebA faces (prepare_faces --celeba; teacher labels only, needs --teachers) drawn afresh each epoch"
    )
    teachers: str | None = option(
        None, "teacher labels (python -m training.teacher_labels) that fill the points humans did not label"
    )
    teacher: str = option("both", "data: which teacher fills them", choices=teachers_module.CHOICES)
    teacher_agree: float = option(
        teachers_module.AGREE, "data: with both, fill a point only where they agree within this (outer-eye distances)"
    )
    teacher_weight: float = option(0.5, "loss weight of a teacher's coordinate (a human's weighs 1)")
    teacher_family: str = option(
        teachers_module.FILL_FAMILY,
        "data: whose conventions teacher points are moved to (pooled: every face humans labelled whole;"
        " shown: the same, each counted as often as an epoch shows it)",
        choices=teachers_module.FILL_FAMILIES,
    )

    def resolved(self) -> "Config":
        """A checked copy: what `train` runs and the checkpoint records."""
        c = dataclasses.replace(self, widths=tuple(self.widths))
        if min(c.epochs, c.batch_size, c.threads, len(c.widths), c.repeat_photos) < 1:
            raise InputError(
                "--epochs, --batch-size, --threads and --repeat-photos must be >= 1, and --widths needs one width"
            )
        if min(c.mtfl_per_epoch, c.celeba_per_epoch, c.teacher_weight, c.teacher_agree) < 0:
            raise InputError("--mtfl-per-epoch, --celeba-per-epoch, --teacher-weight and --teacher-agree must be >= 0")
        if c.celeba_per_epoch and not c.teachers:
            raise InputError("--celeba-per-epoch needs --teachers: CelebA's faces have no human labels")
        if min(c.lr, c.weight_decay) < 0:
            raise InputError("--lr and --weight-decay must be >= 0")
        if c.loss not in LOSSES:
            raise InputError(f"unknown loss {c.loss!r} ({', '.join(LOSSES)})")
        return c

    @property
    def model_name(self) -> str:
        """The registry name (training.models.MODELS), which the checkpoint carries."""
        return MODEL_NAME

    def model_args(self) -> dict:
        return {
            "widths": tuple(self.widths),
            "hidden": self.hidden,
            "dropout": self.dropout,
            "flip_tta": self.flip_tta,
            "head": self.head,
            "heatmap_width": self.heatmap_width,
        }


# --- loss --------------------------------------------------------------------------------------


def keypoint_loss(kind: str, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
    """The weighted mean loss over the labelled coordinates: a NaN target (a point nobody labelled)
    is left out; `weight` (default 1) weighs each coordinate (a teacher's less than a human's)."""
    labelled = ~torch.isnan(target)
    weight = torch.ones_like(target) if weight is None else weight
    pred, target, weight = pred[labelled], target[labelled], weight[labelled]
    if kind == "mse":
        error = (pred - target) ** 2
    elif kind in ("l1", "wing"):
        # L1 and wing in crop pixels, where wing's constants (w=4, eps=1) mean something.
        error = (pred - target).abs() * (SIZE / 2)
        if kind == "wing":
            w, eps = 4.0, 1.0
            c = w - w * np.log(1 + w / eps)
            error = torch.where(error < w, w * torch.log1p(error / eps), error - c)
    else:
        raise InputError(f"unknown loss {kind!r} ({', '.join(LOSSES)})")
    return (error * weight).sum() / weight.sum()


# --- data --------------------------------------------------------------------------------------


PHOTO_SOURCES = ("helen", "afw")  # 300-W's photos, all 68 points labelled
# Sources drawn afresh each epoch, a given number of faces (Config.mtfl_per_epoch, celeba_per_epoch):
# MTFL's (five points labelled; prepare_faces --mtfl) and CelebA's (teacher labels only; --celeba).
DRAWN_SOURCES = ("mtfl", "celeba")


def photo_indices(sources: np.ndarray) -> np.ndarray:
    """The crops that come from 300-W's photos (Helen, AFW: one person each)."""
    return np.flatnonzero(np.isin(sources, PHOTO_SOURCES))


def epoch_order(
    sources: np.ndarray,
    repeat_photos: int,
    rng: np.random.Generator,
    mtfl_per_epoch: int = 0,
    celeba_per_epoch: int = 0,
) -> np.ndarray:
    """One epoch's shuffled indices: every YouTube frame once, every photo `repeat_photos` times and
    `mtfl_per_epoch` MTFL and `celeba_per_epoch` CelebA faces drawn afresh (no face twice in an
    epoch). 312 people fill 2,664 near-duplicate YouTube frames; each photo is a person of its own."""
    full = np.flatnonzero(~np.isin(sources, DRAWN_SOURCES))
    repeats = [photo_indices(sources)] * (repeat_photos - 1)
    drawn = [
        rng.choice(pool, size=min(count, len(pool)), replace=False)
        for source, count in zip(DRAWN_SOURCES, (mtfl_per_epoch, celeba_per_epoch))
        if len(pool := np.flatnonzero(sources == source))
    ]
    return rng.permutation(np.concatenate([full, *repeats, *drawn]))


def flip(image: np.ndarray, points_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror a square crop and its (..., 15, 2) pixel keypoints; left and right points trade places."""
    mirrored = points_px.copy()
    mirrored[..., 0] = (image.shape[1] - 1) - mirrored[..., 0]
    return image[:, ::-1].copy(), mirrored[..., FLIP, :]


def augment(context: np.ndarray, points: np.ndarray, config: Config, rng: np.random.Generator):
    """One uint8 context crop and its normalized keypoints (..., 15, 2; several sets move alike) -> a
    float32 [0,1] 96x96 crop and its keypoints, moved the way a detector's box and a camera would."""
    border = (len(context) - SIZE) / 2
    px = denormalize(points) + border  # context pixels
    if rng.random() < config.flip_p:
        context, px = flip(context, px)
    # One 2x3 matrix moves pixels and keypoints alike: rotation and scale about the face's center,
    # then the cut to the 96x96 window with a shift. cv2 maps source (x, y) to M @ (x, y, 1).
    center = ((len(context) - 1) / 2, (len(context) - 1) / 2)
    angle = rng.uniform(-config.rotate, config.rotate)
    matrix = cv2.getRotationMatrix2D(center, angle, 1 + rng.uniform(-config.scale, config.scale))
    matrix[:, 2] += rng.uniform(-config.shift, config.shift, 2) * SIZE - border
    image = cv2.warpAffine(context, matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    px = px @ matrix[:, :2].T + matrix[:, 2]
    if rng.random() < config.jpeg_p:
        quality = int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))
        image = cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_GRAYSCALE)
    x = model_input(image[None])[0, 0]
    if rng.random() < config.blur_p:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(*config.blur_sigma))
    x = (x - 0.5) * rng.uniform(*config.contrast) + 0.5 + rng.uniform(-config.brightness, config.brightness)
    if rng.random() < config.noise_p:
        x = x + rng.normal(0, rng.uniform(*config.noise_sigma), x.shape).astype(np.float32)
    return np.clip(x, 0, 1), normalize(px).astype(np.float32)


def batches(images, points, config: Config, rng: np.random.Generator, train: bool, order=None, taught=None):
    """(x, target, weight) batches. Training augments each crop, and with `taught` (the teachers'
    points where humans left one, else NaN) a target is the human's point or else the teacher's,
    which weighs `config.teacher_weight`."""
    if order is None:
        order = rng.permutation(len(images)) if train else np.arange(len(images))
    for start in range(0, len(order), config.batch_size):
        idx = order[start : start + config.batch_size]
        if train:
            both = points[idx] if taught is None else np.stack([points[idx], taught[idx]], axis=1)
            pairs = [augment(images[i], p, config, rng) for i, p in zip(idx, both)]
            x, y = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
        else:
            x, y = model_input(images[idx])[:, 0], points[idx]
        weight = np.ones(y.shape[:1] + y.shape[-2:], np.float32)
        if y.ndim == 4:  # human, teacher
            human, teacher = y[:, 0], y[:, 1]
            weight = np.where(np.isnan(human), config.teacher_weight, 1).astype(np.float32)
            y = np.where(np.isnan(human), teacher, human)
        flat = (len(idx), -1)
        yield torch.from_numpy(x[:, None]), torch.from_numpy(y.reshape(flat)), torch.from_numpy(weight.reshape(flat))


# --- training ----------------------------------------------------------------------------------


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """uint8 (N, 96, 96) crops -> (N, 30) normalized predictions."""
    model.eval()
    out = [
        model(torch.from_numpy(model_input(images[i : i + batch_size]))).points
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out).numpy()


def evaluate(model: nn.Module, images, points, config: Config) -> dict:
    pred = predict(model, images)
    target = points.reshape(len(points), -1)
    loss = keypoint_loss(config.loss, torch.from_numpy(pred), torch.from_numpy(target)).item()
    return {"val_loss": loss, "val_score": course_score(pred, target), "val_nme": nme(pred, target)}


def save_grid(model, images, points, path: Path, count: int = 32) -> None:
    """Validation crops at 2x: true keypoints as white rings, predictions in part colors."""
    picks = np.linspace(0, len(images) - 1, min(count, len(images))).astype(int)
    pred = as_points(predict(model, images[picks]))
    tiles = []
    for i, p in zip(picks, pred):
        tile = cv2.resize(cv2.cvtColor(images[i], cv2.COLOR_GRAY2BGR), None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
        for x, y in (denormalize(points[i]) + 0.5) * 2 - 0.5:
            cv2.circle(tile, (int(round(x)), int(round(y))), 4, (255, 255, 255), 1, cv2.LINE_AA)
        draw.draw_keypoints(tile, (denormalize(p) + 0.5) * 2 - 0.5)
        tiles.append(tile)
    cv2.imwrite(str(path), draw.contact_sheet(tiles, columns=8))


def start_from(model: nn.Module, checkpoint: str) -> None:
    """Load a checkpoint's weights into `model`: all of them for the same head, the trunk alone
    (the conv stages and pixel statistics) for another head, which then starts fresh. A spread
    layer fits its trunk's errors, which training changes: it is left behind (refit it with
    `python -m training.keypoint_confidence`)."""
    start = models.model_from_checkpoint(common.load_checkpoint(checkpoint), expected=MODEL_NAME)
    fresh = ("spread.",) if type(start.head) is type(model.head) else ("spread.", "head.")
    weights = {k: v for k, v in start.state_dict().items() if not k.startswith(fresh)}
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as e:  # a weight of another shape
        raise InputError(
            f"{checkpoint}: its trunk does not fit this model ({' '.join(str(e).split())[:200]})"
        ) from None
    if unexpected or any(not k.startswith(fresh) for k in missing):
        raise InputError(f"{checkpoint}: its weights do not fit this model ({', '.join((missing + unexpected)[:4])})")


def taught_points(config: Config, human: np.ndarray, sources: np.ndarray) -> tuple[np.ndarray | None, dict | None]:
    """The teachers' points for the training faces' points that humans did not label (--teachers),
    and what was filled and dropped; (None, None) without teachers."""
    if not config.teachers:
        return None, None
    with np.load(config.data) as data:
        names, validation = data["names"], data["validation"]
    labels = teachers_module.read_labels(config.teachers, names)
    train_rows = {key: labels[key][~validation] for key in teachers_module.TEACHERS}
    labels = {**labels, **train_rows}
    shown = np.where(np.isin(sources, PHOTO_SOURCES), config.repeat_photos, 1)  # times an epoch shows each face
    taught, counts = teachers_module.targets(
        human, labels, config.teacher, config.teacher_agree, config.teacher_family, shown
    )
    print(
        f"teacher labels ({config.teacher}): {counts['points_filled']:,} of the {counts['points_humans_left']:,} "
        f"points humans left filled; faces a teacher failed on: {counts['faces_failed']}; "
        f"points the teachers disagree on: {counts['points_teachers_disagree']:,}",
        flush=True,
    )
    return taught, counts


def train(config: Config, command: str = "") -> dict:
    """One full run; writes the checkpoint, metrics JSON, curves and validation grid into `out`."""
    config = config.resolved()
    torch.set_num_threads(config.threads)
    common.seed_everything(config.seed)
    rng = np.random.default_rng(config.seed)
    split = load_training(config.data)
    train_context, train_points, val_images, val_points = (
        split.train_context,
        split.train_points,
        split.val_images,
        split.val_points,
    )
    taught, teacher_counts = taught_points(config, split.train_points, split.train_sources)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)

    mean_shape = np.nanmean(train_points, axis=0, keepdims=True).repeat(len(val_points), axis=0)
    baseline = {
        "baseline_score": course_score(mean_shape, val_points),
        "baseline_nme": nme(mean_shape, val_points),
    }

    model = models.build(config.model_name, config.model_args())
    border = (train_context.shape[1] - SIZE) // 2
    window = train_context[:, border : border + SIZE, border : border + SIZE]
    pixels = model_input(window)
    model.pixel_mean.fill_(float(pixels.mean()))
    model.pixel_std.fill_(float(pixels.std()))
    if config.init:
        start_from(model, config.init)
    params = common.count_params(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    drawn = (config.mtfl_per_epoch, config.celeba_per_epoch)
    epoch_size = len(epoch_order(split.train_sources, config.repeat_photos, np.random.default_rng(0), *drawn))
    steps = -(-epoch_size // config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, config.lr, total_steps=config.epochs * steps, pct_start=0.15
    )
    print(
        f"{len(train_context)} train / {len(val_images)} validation crops, {params:,} parameters; "
        f"mean-shape baseline: score {baseline['baseline_score']:.1f}, NME {baseline['baseline_nme']:.2%}",
        flush=True,
    )

    history, started = [], time.time()
    for epoch in range(1, config.epochs + 1):
        model.train()
        total, seen = 0.0, 0
        bar = tqdm(
            batches(
                train_context,
                train_points,
                config,
                rng,
                True,
                epoch_order(split.train_sources, config.repeat_photos, rng, *drawn),
                taught,
            ),
            total=steps,
            desc=f"epoch {epoch}/{config.epochs}",
            disable=not config.progress,
            file=sys.stderr,
            mininterval=1 if sys.stderr.isatty() else 30,
        )
        for x, y, weight in bar:
            loss = keypoint_loss(config.loss, model(x).points, y, weight)
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
    per_source = {
        str(source): evaluate(
            model, val_images[split.val_sources == source], val_points[split.val_sources == source], config
        )
        for source in sorted(set(split.val_sources))
    }
    metrics = {
        **baseline,
        "val_score": final["val_score"],
        "val_nme": final["val_nme"],
        "val_score_no_flip": single["val_score"],
        "val_nme_no_flip": single["val_nme"],
        "val_score_flip": flipped["val_score"],
        "val_nme_flip": flipped["val_nme"],
        "val_by_source": {
            source: {"frames": int((split.val_sources == source).sum()), "score": m["val_score"], "nme": m["val_nme"]}
            for source, m in per_source.items()
        },
        "params": params,
        "train_seconds": round(train_seconds, 1),
        "threads": config.threads,
        "epochs": config.epochs,
        "command": command,
        "teacher_labels": teacher_counts,
        "history": history,
    }
    model.eval()
    # The config names the data; the metrics pin down which faces.npz it was: digest, split sizes.
    metrics["data_sha256"] = hashlib.sha256(Path(config.data).read_bytes()).hexdigest()
    metrics["train_frames"], metrics["val_frames"] = len(train_context), len(val_images)
    common.save_checkpoint(
        out / f"{MODEL_NAME}.pt",
        MODEL_NAME,
        config.model_args(),
        dataclasses.asdict(config),
        model,
        {k: v for k, v in metrics.items() if k != "history"},
    )
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
        f"(no flip: {single['val_score']:.1f}, {single['val_nme']:.2%}); "
        + "".join(f"{k}: {m['val_score']:.1f}, {m['val_nme']:.2%}; " for k, m in per_source.items())
        + f"trained in {train_seconds:.0f}s; "
        f"wrote {out / MODEL_NAME}.pt/.json/_curves.png/_val_grid.png",
        flush=True,
    )
    return metrics


def parse_args(argv: list[str] | None = None) -> Config:
    """The command line -> the checked Config (one flag per Config field)."""
    return common.parse_config(Config, argv, "python -m training.keypoints", __doc__)


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    command = "python -m training.keypoints " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        train(config, command.strip())
    except InputError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
