"""MNIST digits: the course's MLP autoencoder + classifier, and a compact CNN.

    python -m training.digits --model cnn --data ../shared/data/mnist --out models/digits_cnn.pt
    python -m training.digits --model mlp --data ../shared/data/mnist --out models/digits_mlp.pt
    python -m training.digits --model mlp --ablation --data ../shared/data/mnist   # 100/300/1000 labels

Models take (N,1,28,28) float32 pixels in [0,1] (white digit on black) and return (N,10) logits;
any normalization happens inside forward so the exported ONNX takes raw pixels. The validation
split is the last --val-size training images; nothing is trained on it, the autoencoder included.
"""

import argparse
import math
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from training.common import plot_curves, save_checkpoint, seed_everything, write_json
from training.mnist import load_mnist, train_validation_split
from vision.errors import InputError

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
ABLATION_LABELS = (100, 300, 1000)


@dataclass
class Config:
    model: str = "cnn"  # cnn | mlp
    data: str = "data/mnist"
    out: str = ""  # checkpoint path; "" -> models/digits_<model>.pt
    epochs: int = 0  # 0 -> per-model default (cnn 20, mlp 50)
    pretrain_epochs: int = 5  # mlp autoencoder epochs, on images only
    labels: int = 0  # 0 -> all training labels; else a class-balanced seeded subset
    no_pretrain: bool = False
    batch_size: int = 0  # 0 -> per-model default (cnn 128, mlp 64)
    lr: float = 0.0  # 0 -> per-model default (cnn 3e-3 one-cycle peak, mlp 5e-4 as the course)
    weight_decay: float = 1e-4
    # Augmentation: each transform is applied to a sample with its own probability.
    rotate_deg: float = 30.0
    rotate_p: float = 0.2
    blur_p: float = 0.2
    blur_sigma: tuple = (0.1, 1.5)
    translate: float = 0.08
    translate_p: float = 0.2
    cnn_channels: tuple = (16, 32, 64)
    seed: int = 0
    threads: int = 1
    val_size: int = 10_000
    ablation: bool = False

    def resolved(self) -> "Config":
        """Fill the per-model defaults so the checkpoint records what actually ran."""
        cnn = self.model == "cnn"
        c = Config(**{f.name: getattr(self, f.name) for f in fields(self)})
        c.epochs = c.epochs or (20 if cnn else 50)
        c.batch_size = c.batch_size or (128 if cnn else 64)
        c.lr = c.lr or (3e-3 if cnn else 5e-4)
        c.out = c.out or f"models/digits_{c.model}.pt"
        return c


# ---------------------------------------------------------------- models


def mlp_stack(sizes: list[int]) -> nn.Sequential:
    """Linear+BN+ReLU between layers; the last Linear is plain (latent code or pixel logits)."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers += [nn.BatchNorm1d(b), nn.ReLU()]
    return nn.Sequential(*layers)


ENCODER_SIZES = [784, 392, 196, 98, 49, 32]


class AutoEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = mlp_stack(ENCODER_SIZES)
        self.decoder = mlp_stack(ENCODER_SIZES[::-1])

    def forward(self, x):  # -> pixel logits (N,784); BCE-with-logits keeps the loss stable
        return self.decoder(self.encoder(x.flatten(1)))


def classifier_head(latent: int = 32, hidden: int = 400) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(latent, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(), nn.Dropout(0.2),
        nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(), nn.Dropout(0.2),
        nn.Linear(hidden, 10),
    )  # fmt: skip


class MLPClassifier(nn.Module):
    """Encoder + head; the course feeds raw [0,1] pixels, so there is no normalization here."""

    def __init__(self):
        super().__init__()
        self.encoder = mlp_stack(ENCODER_SIZES)
        self.head = classifier_head()

    def forward(self, x):
        return self.head(self.encoder(x.flatten(1)))


def conv_bn(cin: int, cout: int, stride: int = 1, padding: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class DigitCNN(nn.Module):
    """28 -> 14 -> 7 quickly (strided conv, max-pool) so most convs run on small maps: few FLOPs.

    Dropout2d drops whole feature maps, which regularizes convs better than per-pixel dropout.
    """

    def __init__(self, channels=(16, 32, 64), dropout: float = 0.1):
        super().__init__()
        a, b, c = channels
        self.features = nn.Sequential(
            conv_bn(1, a), conv_bn(a, b, stride=2),  # 28 -> 14
            conv_bn(b, b), nn.MaxPool2d(2), nn.Dropout2d(dropout),  # 14 -> 7
            conv_bn(b, c), conv_bn(c, c, padding=0), nn.Dropout2d(dropout),  # 7 -> 5
            conv_bn(c, c, padding=0),  # 5 -> 3
        )  # fmt: skip
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(c * 9, 10))

    def forward(self, x):
        return self.classifier(self.features((x - MNIST_MEAN) / MNIST_STD))


def build_model(config: Config) -> nn.Module:
    if config.model == "cnn":
        return DigitCNN(tuple(config.cnn_channels))
    if config.model == "mlp":
        return MLPClassifier()
    raise InputError(f"unknown model {config.model!r} (cnn or mlp)")


def model_from_checkpoint(checkpoint: dict) -> nn.Module:
    """A checkpoint dict (torch.load(weights_only=True)) -> eval-mode model giving (N,10) logits."""
    model = build_model(Config(**checkpoint["config"]))
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


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
    """Batched course augmentation on (N,1,28,28): rotation, Gaussian blur (k=3), translation.

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
        theta = torch.stack([torch.stack([cos, -sin, offset[warp, 0]], 1), torch.stack([sin, cos, offset[warp, 1]], 1)], 1)
        grid = F.affine_grid(theta, (len(warp), 1, 28, 28), align_corners=False)
        out[warp] = F.grid_sample(out[warp], grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    smooth = blur.nonzero().squeeze(1)
    if len(smooth):
        taps = torch.exp(-torch.tensor([-1.0, 0.0, 1.0])[None] ** 2 / (2 * sigma[smooth, None] ** 2))
        taps = taps / taps.sum(1, keepdim=True)
        kernels = (taps[:, :, None] * taps[:, None, :])[:, None]  # (m,1,3,3), separable Gaussian
        # One grouped conv blurs every selected image with its own sigma.
        images = F.pad(out[smooth].transpose(0, 1), (1, 1, 1, 1), mode="reflect")
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


# ---------------------------------------------------------------- train and evaluate


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> tuple[float, float]:
    model.eval()
    loss = correct = 0.0
    for idx in batches(len(x), batch_size, None):
        logits = model(x[idx])
        loss += F.cross_entropy(logits, y[idx], reduction="sum").item()
        correct += (logits.argmax(1) == y[idx]).sum().item()
    return loss / len(x), correct / len(x)


def pretrain_autoencoder(x: torch.Tensor, config: Config, generator: torch.Generator) -> AutoEncoder:
    """Phase 1: reconstruct the training images (no labels); returns the trained autoencoder."""
    ae = AutoEncoder()
    opt = torch.optim.Adam(ae.parameters(), lr=1e-3)
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
    return ae


def train_classifier(model, train, val, config: Config, generator: torch.Generator, desc: str = "") -> list[dict]:
    """Cross-entropy with Adam(W); returns the per-epoch history."""
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
        bar = tqdm(list(batches(len(x), config.batch_size, generator)), desc=f"{desc}epoch {epoch}", leave=False)
        for idx in bar:
            logits = model(augment(x[idx], config, generator))
            loss = F.cross_entropy(logits, y[idx])
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
        print(f"{desc}epoch {epoch}/{config.epochs}: train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f}"
              f" | val loss {val_loss:.4f} acc {val_acc:.4f}", flush=True)  # fmt: skip
    return history


def load_split(config: Config):
    arrays = load_mnist(Path(config.data))
    (xt, yt), (xv, yv) = train_validation_split(arrays["train_images"], arrays["train_labels"], config.val_size)
    as_labels = lambda a: torch.from_numpy(a.astype(np.int64))  # noqa: E731
    return (to_tensor(xt), as_labels(yt)), (to_tensor(xv), as_labels(yv))


def fit(config: Config, data=None, encoder_state: dict | None = None) -> tuple[nn.Module, dict, list[dict]]:
    """One full run (pretraining included for mlp) -> model, metrics, history. Nothing is written."""
    generator = seed_everything(config.seed)
    (x, y), val = data or load_split(config)
    start = time.perf_counter()
    model = build_model(config)
    if config.model == "mlp" and not config.no_pretrain:
        if encoder_state is None:  # phase 1 sees every training image, labeled or not
            encoder_state = pretrain_autoencoder(x, config, generator).encoder.state_dict()
        model.encoder.load_state_dict(encoder_state)
    if config.labels and config.labels < len(x):
        keep = torch.from_numpy(balanced_subset(y.numpy(), config.labels, config.seed))
        x, y = x[keep], y[keep]
    history = train_classifier(model, (x, y), val, config, generator)
    metrics = dict(
        val_accuracy=history[-1]["val_accuracy"], val_loss=history[-1]["val_loss"],
        params=count_params(model), mflops=round(count_mflops(model), 3),
        train_images=len(x), val_images=len(val[0]), train_seconds=round(time.perf_counter() - start, 1),
    )  # fmt: skip
    return model.eval(), metrics, history


def command_line(argv: list[str] | None) -> str:
    return "python -m training.digits " + " ".join(sys.argv[1:] if argv is None else argv)


def run(config: Config, command: str) -> dict:
    model, metrics, history = fit(config)
    metrics |= dict(command=command, threads=config.threads, epochs=config.epochs)
    if config.model == "mlp":
        metrics["autoencoder_params"] = count_params(AutoEncoder())
    name = f"digits_{config.model}"
    out = Path(config.out)
    save_checkpoint(out, name, asdict(config), model, metrics)
    write_json(out.with_suffix(".json"), metrics | dict(history=history))
    plot_curves(history, out.with_name(out.stem + "_curves.png"), f"{name}: val accuracy {metrics['val_accuracy']:.4f}")
    print(f"{name}: val accuracy {metrics['val_accuracy']:.4f}, {metrics['params']:,} params, "
          f"{metrics['mflops']} MFLOPs, {metrics['train_seconds']} s -> {out}")  # fmt: skip
    return metrics


def ablation(config: Config, command: str, out_dir: Path = Path("models")) -> dict:
    """Accuracy against labels, pretrained vs from scratch; one autoencoder serves every size."""
    data = load_split(config)
    start = time.perf_counter()
    encoder_state = pretrain_autoencoder(data[0][0], config, seed_everything(config.seed)).encoder.state_dict()
    pretrain_seconds = round(time.perf_counter() - start, 1)
    rows = []
    for labels in ABLATION_LABELS:
        for pretrained in (True, False):
            c = Config(**asdict(config) | dict(labels=labels, no_pretrain=not pretrained))
            _, metrics, history = fit(c, data, encoder_state)
            rows.append(dict(labels=labels, pretrained=pretrained, val_accuracy=metrics["val_accuracy"],
                             best_val_accuracy=max(h["val_accuracy"] for h in history),
                             train_seconds=metrics["train_seconds"]))  # fmt: skip
            print(f"labels {labels:5d} pretrained {pretrained!s:5}: val accuracy {metrics['val_accuracy']:.4f}")
    result = dict(rows=rows, command=command, epochs=config.epochs, pretrain_epochs=config.pretrain_epochs,
                  pretrain_seconds=pretrain_seconds, train_seconds=round(time.perf_counter() - start, 1))  # fmt: skip
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
    p = argparse.ArgumentParser(
        prog="python -m training.digits", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    d = Config()
    p.add_argument("--model", choices=("cnn", "mlp"), default=d.model)
    p.add_argument("--data", default=d.data, help="folder of the MNIST IDX files")
    p.add_argument("--out", default=d.out, help="checkpoint path (default models/digits_<model>.pt)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="classifier epochs (default cnn 20, mlp 50)")
    p.add_argument("--pretrain-epochs", type=int, default=d.pretrain_epochs, help="mlp autoencoder epochs")
    p.add_argument("--labels", type=int, default=d.labels, help="labeled images, class-balanced (default all)")
    p.add_argument("--no-pretrain", action="store_true", help="mlp: train the classifier from scratch")
    p.add_argument("--ablation", action="store_true", help="mlp: the 100/300/1000-label table, into models/")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--cnn-channels", type=int, nargs=3, default=d.cnn_channels, metavar="C", help="cnn widths")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads")
    p.add_argument("--val-size", type=int, default=d.val_size, help="last N training images validate")
    args = vars(p.parse_args(argv))
    config = Config(**{k: v for k, v in args.items() if k in {f.name for f in fields(Config)}})
    config.cnn_channels = tuple(config.cnn_channels)
    if config.ablation:
        config.model = "mlp"
    if config.model == "cnn":
        # The CNN trains on every label with milder, more frequent augmentation than the course MLP.
        config.rotate_deg, config.rotate_p, config.translate, config.translate_p = 12.0, 0.5, 0.1, 0.5
    if config.labels < 0 or config.epochs < 0 or config.val_size < 1:
        p.error("--labels, --epochs must be >= 0 and --val-size >= 1")
    return config.resolved()


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
