"""MNIST digits: the course's MLP autoencoder + classifier, and a compact CNN.

    python -m training.digits --model cnn --data ../shared/data/mnist --out models/digits_cnn.pt
    python -m training.digits --model mlp --data ../shared/data/mnist --out models/digits_mlp.pt
    python -m training.digits --model mlp --ablation --data ../shared/data/mnist   # 100/300/1000 labels

The networks are in `training.models` (digits_cnn, digits_mlp): they take (N,1,28,28) float32
pixels in [0,1] (white digit on black) and return (N,10) logits. The validation split is the last
--val-size training images; nothing is trained on it, the autoencoder included.
"""

import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from training import models
from training.common import (
    count_params,
    fill_defaults,
    load_checkpoint,
    option,
    parse_config,
    plot_curves,
    save_checkpoint,
    seed_everything,
    write_json,
)
from training.mnist import VALIDATION_SIZE, load_mnist, train_validation_split
from vision.errors import InputError

ABLATION_LABELS = (100, 300, 1000)
RECORDS = Path("docs/records")  # the ablation's table: a record of models that do not ship, not in models/

# What a None field of Config means, per model. The CNN trains on every label with milder, more
# frequent augmentation than the course MLP.
MODEL_DEFAULTS = {
    "cnn": dict(epochs=20, batch_size=128, lr=3e-3, rotate_deg=12.0, rotate_p=0.5, translate=0.1, translate_p=0.5),
    "mlp": dict(epochs=50, batch_size=64, lr=5e-4, rotate_deg=30.0, rotate_p=0.2, translate=0.08, translate_p=0.2),
}


@dataclass
class Config:
    """One training run. None means the model's default (MODEL_DEFAULTS), filled by `resolved()`."""

    model: str | None = option(None, "which network (default: cnn; mlp with --ablation)", choices=tuple(MODEL_DEFAULTS))
    data: str = option("data/mnist", "folder of the MNIST IDX files")
    out: str | None = option(
        None,
        f"checkpoint path (default: models/digits_<model>.pt); --ablation writes into its folder (default {RECORDS})",
    )
    epochs: int | None = option(None, "classifier epochs")
    pretrain: bool = option(True, "mlp: pretrain the encoder as an autoencoder on the images first")
    pretrain_epochs: int = option(5, "mlp autoencoder epochs, on images only")
    pretrain_lr: float = option(1e-3, "mlp autoencoder learning rate (Adam)")
    labels: int | None = option(None, "labeled training images, a class-balanced seeded subset (default: all)")
    batch_size: int | None = option(None, "batch size")
    lr: float | None = option(None, "learning rate: the cnn's one-cycle peak, the mlp's Adam rate as the course")
    weight_decay: float = option(1e-4, "weight decay")
    # Augmentation: each transform is applied to a sample with its own probability.
    rotate_deg: float | None = option(None, "augmentation: rotation, uniform +- degrees")
    rotate_p: float | None = option(None, "augmentation: probability of a rotation")
    blur_p: float = option(0.2, "augmentation: probability of a Gaussian blur")
    blur_sigma: tuple[float, float] = option((0.1, 1.5), "augmentation: blur sigma range, pixels", metavar="SIGMA")
    blur_radius: int = option(1, "augmentation: blur kernel radius (1: 3x3)")
    translate: float | None = option(None, "augmentation: shift, uniform +- share of the image side")
    translate_p: float | None = option(None, "augmentation: probability of a shift")
    cnn_channels: tuple[int, int, int] = option((16, 32, 64), "cnn: channels of its three stages", metavar="C")
    init: str | None = option(None, "start from this checkpoint's weights (same model): a fine-tuning run")
    not_digits: str | None = option(
        None, "npz of strokes that are not digits (python -m training.not_digits): taught to look like no digit"
    )
    not_digit_weight: float = option(0.1, "weight of the not-a-digit loss beside the cross-entropy")
    seen_margins: tuple[float, float] = option(
        (8.0, 2.0), "log-sum-exp of the logits the digits are pushed above, the not-digits below", metavar="LSE"
    )
    seed: int = option(0, "seed of the initialization, data order, augmentation and label subset")
    threads: int = option(1, "torch CPU threads")
    val_size: int = option(VALIDATION_SIZE, "the last N training images validate")
    ablation: bool = option(False, "mlp: the 100/300/1000-label table, into the folder of --out (no checkpoint)")

    def resolved(self) -> "Config":
        """Every None filled with the model's default, checked: what `fit` runs and the checkpoint records."""
        model = self.model or ("mlp" if self.ablation else "cnn")
        if model not in MODEL_DEFAULTS:
            raise InputError(f"unknown model {model!r} ({' or '.join(MODEL_DEFAULTS)})")
        if self.ablation and model != "mlp":
            raise InputError("--ablation trains the mlp, not the cnn")
        c = fill_defaults(dataclasses.replace(self, model=model), MODEL_DEFAULTS[model])
        c.out = c.out or str((RECORDS if self.ablation else Path("models")) / f"digits_{model}.pt")
        if min(c.epochs, c.batch_size, c.val_size, c.threads, c.blur_radius) < 1 or c.pretrain_epochs < 0:
            raise InputError(
                "--epochs, --batch-size, --val-size, --threads, --blur-radius must be >= 1, --pretrain-epochs >= 0"
            )
        if c.labels is not None and c.labels < 1:
            raise InputError("--labels must be >= 1 (leave it out to train on all labels)")
        if min(c.lr, c.pretrain_lr, c.weight_decay, c.not_digit_weight) < 0:
            raise InputError("--lr, --pretrain-lr, --weight-decay and --not-digit-weight must be >= 0")
        if c.seen_margins[0] <= c.seen_margins[1]:
            raise InputError("--seen-margins: the digits' margin must be above the not-digits'")
        return c

    @property
    def model_name(self) -> str:
        """The registry name (training.models.MODELS), which the checkpoint carries."""
        return f"digits_{self.model}"

    def model_args(self) -> dict:
        return {"channels": tuple(self.cnn_channels)} if self.model == "cnn" else {}


def count_mflops(model: nn.Module) -> float:
    """Forward MFLOPs for one image, counting 2 FLOPs per multiply-add of Conv2d and Linear."""
    macs = []

    def hook(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            macs.append(output.numel() * k)
        else:
            macs.append(output.numel() * module.in_features)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))
    model.train(was_training)
    for h in handles:
        h.remove()
    return 2 * sum(macs) / 1e6


# ---------------------------------------------------------------- augmentation


def augment(x: torch.Tensor, config: Config, generator: torch.Generator) -> torch.Tensor:
    """Batched course augmentation on (N,1,H,W): rotation, Gaussian blur, translation.

    Each sample draws each transform independently; untouched samples are returned bit-exact.
    """
    n = len(x)
    rand = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
    rotate = rand(n) < config.rotate_p
    shift = rand(n) < config.translate_p
    blur = rand(n) < config.blur_p
    angle = (rand(n) * 2 - 1) * math.radians(config.rotate_deg) * rotate
    # affine_grid works in [-1,1] coordinates, so a shift of t image widths is 2t there.
    offset = (rand(n, 2) * 2 - 1) * (2 * config.translate) * shift[:, None]
    sigma = config.blur_sigma[0] + rand(n) * (config.blur_sigma[1] - config.blur_sigma[0])
    out = x.clone()

    warp = (rotate | shift).nonzero().squeeze(1)
    if len(warp):
        cos, sin = torch.cos(angle[warp]), torch.sin(angle[warp])
        theta = torch.stack(
            [torch.stack([cos, -sin, offset[warp, 0]], 1), torch.stack([sin, cos, offset[warp, 1]], 1)], 1
        )
        grid = F.affine_grid(theta, (len(warp), *x.shape[1:]), align_corners=False)
        out[warp] = F.grid_sample(out[warp], grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    smooth = blur.nonzero().squeeze(1)
    if len(smooth):
        r = config.blur_radius
        taps = torch.exp(-(torch.arange(-r, r + 1, dtype=torch.float32)[None] ** 2) / (2 * sigma[smooth, None] ** 2))
        taps = taps / taps.sum(1, keepdim=True)
        kernels = (taps[:, :, None] * taps[:, None, :])[:, None]  # (m,1,2r+1,2r+1), separable Gaussian
        # One grouped conv blurs every selected image with its own sigma.
        images = F.pad(out[smooth].transpose(0, 1), (r, r, r, r), mode="reflect")
        out[smooth] = F.conv2d(images, kernels, groups=len(smooth)).transpose(0, 1)
    return out


# ---------------------------------------------------------------- data


def to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]


def balanced_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of n labeled images, n/10 per class (the remainder to the first classes), seeded."""
    rng = np.random.default_rng(seed)
    per_class = [n // 10 + (c < n % 10) for c in range(10)]
    picked = []
    for c in range(10):
        pool = np.flatnonzero(labels == c)
        if per_class[c] > len(pool):
            raise InputError(f"--labels {n}: class {c} has only {len(pool)} training images")
        picked.append(rng.choice(pool, per_class[c], replace=False))
    return np.sort(np.concatenate(picked))


def batches(n: int, batch_size: int, generator: torch.Generator | None):
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        if generator is None or len(idx) > 1:  # BatchNorm cannot train on a batch of one
            yield idx


def load_not_digits(path: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The not-digit strokes of `training.not_digits`, split 90/10 into training and validation."""
    try:
        with np.load(path) as saved:
            images = saved["images"]
    except (OSError, KeyError, ValueError) as e:
        raise InputError(f"{path}: not a file of not-digit strokes ({e}); run python -m training.not_digits") from None
    split = len(images) - max(1, len(images) // 10)
    return to_tensor(images[:split]), to_tensor(images[split:])


# ---------------------------------------------------------------- train and evaluate


def seen(logits: torch.Tensor) -> torch.Tensor:
    """How much a model sees a digit at all: the log-sum-exp of its logits (the reader's reject)."""
    return torch.logsumexp(logits, dim=1)


def not_digit_loss(digits: torch.Tensor, not_digits: torch.Tensor, margins: tuple[float, float]) -> torch.Tensor:
    """Squared hinges that push the digits' log-sum-exp above margins[0] and the not-digits' below
    margins[1] (energy-bounded learning, Liu et al. 2020): the classes' softmax is untouched."""
    above, below = margins
    return F.relu(above - seen(digits)).pow(2).mean() + F.relu(seen(not_digits) - below).pow(2).mean()


@torch.no_grad()
def seen_quantiles(model: nn.Module, digits: torch.Tensor, not_digits: torch.Tensor) -> dict:
    """The validation digits' low log-sum-exp quantiles beside the not-digits' median and high ones."""
    model.eval()
    d, n = seen(model(digits)).numpy(), seen(model(not_digits)).numpy()
    return dict(
        digits_seen_q005=round(float(np.quantile(d, 0.005)), 3),
        digits_seen_q01=round(float(np.quantile(d, 0.01)), 3),
        not_digits_seen_median=round(float(np.median(n)), 3),
        not_digits_seen_q95=round(float(np.quantile(n, 0.95)), 3),
        not_digits_val=len(n),
    )


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> tuple[float, float]:
    model.eval()
    loss = correct = 0.0
    for idx in batches(len(x), batch_size, None):
        logits = model(x[idx])
        loss += F.cross_entropy(logits, y[idx], reduction="sum").item()
        correct += (logits.argmax(1) == y[idx]).sum().item()
    return loss / len(x), correct / len(x)


def pretrain_encoder(x: torch.Tensor, config: Config, generator: torch.Generator) -> dict:
    """Phase 1: reconstruct the training images (no labels); returns the encoder's state_dict."""
    ae = models.AutoEncoder()
    opt = torch.optim.Adam(ae.parameters(), lr=config.pretrain_lr)
    for epoch in range(1, config.pretrain_epochs + 1):
        ae.train()
        bar = tqdm(list(batches(len(x), config.batch_size, generator)), desc=f"autoencoder {epoch}", leave=False)
        total = 0.0
        for i, idx in enumerate(bar, 1):
            loss = F.binary_cross_entropy_with_logits(ae(x[idx]), x[idx].flatten(1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
            bar.set_postfix(loss=f"{total / i:.4f}")
        print(f"autoencoder epoch {epoch}/{config.pretrain_epochs}: reconstruction BCE {total / max(1, i):.4f}")
    return ae.encoder.state_dict()


def train_classifier(
    model, train, val, config: Config, generator: torch.Generator, not_digits: torch.Tensor | None = None
) -> list[dict]:
    """Cross-entropy with Adam(W), and with `not_digits` the not-a-digit loss on half as many of
    them per batch, in the same forward pass; returns the per-epoch history."""
    (x, y), (xv, yv) = train, val
    steps = config.epochs * math.ceil(len(x) / config.batch_size)
    if config.model == "cnn":
        # One-cycle: a short warm-up then annealing gets the CNN to its best in few epochs.
        opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=steps + 1)
    else:
        # The course's Adam(5e-4, wd 1e-4); a cosine decay lets the last epochs settle.
        opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps + 1)
    history = []
    for epoch in range(1, config.epochs + 1):
        model.train()
        loss_sum = correct = seen = 0
        bar = tqdm(list(batches(len(x), config.batch_size, generator)), desc=f"epoch {epoch}", leave=False)
        for idx in bar:
            images = x[idx]
            if not_digits is not None:
                images = torch.cat(
                    [images, not_digits[torch.randint(len(not_digits), (len(idx) // 2,), generator=generator)]]
                )
            logits = model(augment(images, config, generator))
            logits, strokes = logits[: len(idx)], logits[len(idx) :]
            loss = F.cross_entropy(logits, y[idx])
            if not_digits is not None:
                loss = loss + config.not_digit_weight * not_digit_loss(logits, strokes, config.seen_margins)
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == y[idx]).sum().item()
            seen += len(idx)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}")
        val_loss, val_acc = evaluate(model, xv, yv)
        row = dict(epoch=epoch, train_loss=loss_sum / max(1, seen), train_accuracy=correct / max(1, seen))
        history.append(row | dict(val_loss=val_loss, val_accuracy=val_acc))
        print(
            f"epoch {epoch}/{config.epochs}: train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f}"
            f" | val loss {val_loss:.4f} acc {val_acc:.4f}",
            flush=True,
        )
    return history


def load_split(config: Config):
    arrays = load_mnist(Path(config.data))
    (xt, yt), (xv, yv) = train_validation_split(arrays["train_images"], arrays["train_labels"], config.val_size)
    as_labels = lambda a: torch.from_numpy(a.astype(np.int64))  # noqa: E731
    return (to_tensor(xt), as_labels(yt)), (to_tensor(xv), as_labels(yv))


def fit(config: Config, data=None, encoder_state: dict | None = None) -> tuple[nn.Module, dict, list[dict]]:
    """One full run (pretraining included for mlp) -> model, metrics, history. Nothing is written.

    The config is resolved first, so a Config from Python trains exactly as the same flags do.
    """
    config = config.resolved()
    generator = seed_everything(config.seed)
    (x, y), val = data or load_split(config)
    start = time.perf_counter()
    model = models.build(config.model_name, config.model_args())
    if config.init:
        trained = models.model_from_checkpoint(load_checkpoint(Path(config.init)), expected=config.model_name)
        model.load_state_dict(trained.state_dict())
    elif config.model == "mlp" and config.pretrain:
        if encoder_state is None:  # phase 1 sees every training image, labeled or not
            encoder_state = pretrain_encoder(x, config, generator)
        model.encoder.load_state_dict(encoder_state)
    if config.labels is not None and config.labels < len(x):
        keep = torch.from_numpy(balanced_subset(y.numpy(), config.labels, config.seed))
        x, y = x[keep], y[keep]
    strokes, strokes_val = load_not_digits(config.not_digits) if config.not_digits else (None, None)
    history = train_classifier(model, (x, y), val, config, generator, strokes)
    metrics = dict(
        val_accuracy=history[-1]["val_accuracy"],
        val_loss=history[-1]["val_loss"],
        params=count_params(model),
        mflops=round(count_mflops(model), 3),
        train_images=len(x),
        val_images=len(val[0]),
        train_seconds=round(time.perf_counter() - start, 1),
    )
    if strokes is not None:
        metrics |= dict(not_digits_train=len(strokes)) | seen_quantiles(model, val[0], strokes_val)
    return model.eval(), metrics, history


def command_line(argv: list[str] | None) -> str:
    return "python -m training.digits " + " ".join(sys.argv[1:] if argv is None else argv)


def run(config: Config, command: str) -> dict:
    """fit, then write the checkpoint, its metrics JSON and curves; returns the metrics."""
    config = config.resolved()
    model, metrics, history = fit(config)
    metrics |= dict(command=command, threads=config.threads, epochs=config.epochs)
    if config.model == "mlp":
        metrics["autoencoder_params"] = count_params(models.AutoEncoder())
    name = config.model_name
    out = Path(config.out)
    save_checkpoint(out, name, config.model_args(), dataclasses.asdict(config), model, metrics)
    write_json(out.with_suffix(".json"), metrics | dict(history=history))
    plot_curves(history, out.with_name(out.stem + "_curves.png"), f"{name}: val accuracy {metrics['val_accuracy']:.4f}")
    print(
        f"{name}: val accuracy {metrics['val_accuracy']:.4f}, {metrics['params']:,} params, "
        f"{metrics['mflops']} MFLOPs, {metrics['train_seconds']} s -> {out}"
    )
    return metrics


def ablation(config: Config, command: str, out_dir: Path = RECORDS) -> dict:
    """Accuracy against labels, pretrained vs from scratch; one autoencoder serves every size."""
    config = config.resolved()
    data = load_split(config)
    start = time.perf_counter()
    encoder_state = pretrain_encoder(data[0][0], config, seed_everything(config.seed))
    pretrain_seconds = round(time.perf_counter() - start, 1)
    rows = []
    for labels in ABLATION_LABELS:
        for pretrained in (True, False):
            c = dataclasses.replace(config, labels=labels, pretrain=pretrained)
            _, metrics, history = fit(c, data, encoder_state)
            best = max(h["val_accuracy"] for h in history)
            rows.append(
                dict(
                    labels=labels,
                    pretrained=pretrained,
                    val_accuracy=metrics["val_accuracy"],
                    best_val_accuracy=best,
                    train_seconds=metrics["train_seconds"],
                )
            )
            print(f"labels {labels:5d} pretrained {pretrained!s:5}: val accuracy {metrics['val_accuracy']:.4f}")
    result = dict(
        rows=rows,
        command=command,
        epochs=config.epochs,
        pretrain_epochs=config.pretrain_epochs,
        pretrain_seconds=pretrain_seconds,
        train_seconds=round(time.perf_counter() - start, 1),
    )
    write_json(out_dir / "digits_labels.json", result)
    plot_ablation(rows, out_dir / "digits_labels.png")
    return result


def plot_ablation(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for pretrained, label in ((True, "autoencoder-pretrained encoder"), (False, "from scratch")):
        pts = [(r["labels"], r["val_accuracy"]) for r in rows if r["pretrained"] == pretrained]
        ax.plot(*zip(*pts), marker="o", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("labeled training images")
    ax.set_ylabel("validation accuracy")
    ax.set_title("MLP classifier: accuracy against labels")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: list[str] | None) -> Config:
    """The command line -> the resolved Config (one flag per Config field)."""
    return parse_config(Config, argv, "python -m training.digits", __doc__, MODEL_DEFAULTS)


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    torch.set_num_threads(config.threads)
    try:
        if config.ablation:
            ablation(config, command_line(argv), Path(config.out).parent)
        else:
            run(config, command_line(argv))
    except InputError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
