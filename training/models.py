"""Every network the project trains, the registry of their names, and checkpoint -> model.

The trainers (`training.digits`, `training.keypoints`) and the exporter build models only here:
`build(name, model_args)` for a fresh one, `model_from_checkpoint(checkpoint)` for a trained one.

All models take float32 pixels in [0, 1], (N, 1, H, W); any normalization happens inside
`forward`, so the exported ONNX graphs take raw pixels too.
"""

import inspect
from typing import NamedTuple

import torch
from torch import nn

from vision import keypoints
from vision.errors import InputError
from vision.signatures import CROP_SIZE

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def conv_bn(cin: int, cout: int, stride: int = 1, padding: int = 1) -> nn.Sequential:
    """3x3 conv (no bias: BatchNorm follows), BatchNorm, ReLU: the block of both CNNs."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class ServedNet(nn.Module):
    """A network that `python -m export` ships: `outputs(x)` are its outputs as its ONNX file lists
    them (the parity gate, the export's checks and the evaluations compare those)."""

    def outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self(x)]


# --- digits: the course's MLP autoencoder + classifier ------------------------------------------


ENCODER_SIZES = [784, 392, 196, 98, 49, 32]


def mlp_stack(sizes: list[int]) -> nn.Sequential:
    """Linear+BN+ReLU between layers; the last Linear is plain (latent code or pixel logits)."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers += [nn.BatchNorm1d(b), nn.ReLU()]
    return nn.Sequential(*layers)


class AutoEncoder(nn.Module):
    """Phase 1 of the course's MLP: its encoder becomes the classifier's."""

    def __init__(self):
        super().__init__()
        self.encoder = mlp_stack(ENCODER_SIZES)
        self.decoder = mlp_stack(ENCODER_SIZES[::-1])

    def forward(self, x):  # -> pixel logits (N,784); BCE-with-logits keeps the loss stable
        return self.decoder(self.encoder(x.flatten(1)))


def classifier_head(latent: int = 32, hidden: int = 400) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(latent, hidden),
        nn.BatchNorm1d(hidden),
        nn.LeakyReLU(),
        nn.Dropout(0.2),
        nn.Linear(hidden, hidden),
        nn.BatchNorm1d(hidden),
        nn.LeakyReLU(),
        nn.Dropout(0.2),
        nn.Linear(hidden, 10),
    )


class MLPClassifier(ServedNet):
    """Encoder + head -> (N, 10) logits; the course feeds raw [0,1] pixels, so no normalization."""

    def __init__(self):
        super().__init__()
        self.encoder = mlp_stack(ENCODER_SIZES)
        self.head = classifier_head()

    def forward(self, x):
        return self.head(self.encoder(x.flatten(1)))


# --- digits: the compact CNN ----------------------------------------------------------------------


class DigitCNN(ServedNet):
    """28 -> 14 -> 7 quickly (strided conv, max-pool) so most convs run on small maps: few FLOPs.

    Dropout2d drops whole feature maps, which regularizes convs better than per-pixel dropout.
    """

    def __init__(self, channels=(16, 32, 64), dropout: float = 0.1):
        super().__init__()
        a, b, c = channels
        self.features = nn.Sequential(
            conv_bn(1, a),
            conv_bn(a, b, stride=2),  # 28 -> 14
            conv_bn(b, b),
            nn.MaxPool2d(2),  # 14 -> 7
            nn.Dropout2d(dropout),
            conv_bn(b, c),
            conv_bn(c, c, padding=0),  # 7 -> 5
            nn.Dropout2d(dropout),
            conv_bn(c, c, padding=0),  # 5 -> 3
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(c * 9, 10))

    def forward(self, x):
        return self.classifier(self.features((x - MNIST_MEAN) / MNIST_STD))


# --- facial keypoints -------------------------------------------------------------------------------


KEYPOINT_HEADS = ("fc", "heatmap")


class HeatmapHead(nn.Module):
    """The trunk's stage outputs -> one heatmap per point at 24x24 -> its expected position.

    Top-down like an FPN: the 3x3 map is upsampled through the 6x6, 12x12 and 24x24 ones (a 1x1
    lateral conv each), and each point's softmax over the 24x24 cells is averaged over the cells'
    centers (integral regression, "soft-argmax"): sub-pixel coordinates, differentiable, trained
    with the same coordinate loss as the FC head. Cell j covers crop pixels 4j..4j+3, so its center
    is at 4j + 1.5: the grid is symmetric under mirroring (x -> 95 - x), which flip averaging needs.
    Besides the points it returns each point's spread and concentration, what the spread layer reads.
    """

    def __init__(self, widths, width=64):
        super().__init__()
        levels = len(widths) - 1  # the stages at 24, 12, 6 and 3 px: indices 1 .. len - 1
        self.lateral = nn.ModuleList(nn.Conv2d(widths[i], width, 1) for i in range(1, levels + 1))
        fine_width = width // 2  # the last merge, at 24x24, costs most: half the channels out
        self.smooth = nn.ModuleList(
            conv_bn(width, fine_width if i == 1 else width) for i in range(1, levels)
        )  # after each merge: 24 (fine_width), 12, 6
        self.logits = nn.Conv2d(fine_width, keypoints.NUM_KEYPOINTS, 1)
        side = CROP_SIZE >> 2  # the second stage's map: 24x24
        stride = CROP_SIZE // side  # crop pixels per cell
        pixels = torch.arange(side, dtype=torch.float32) * stride + (stride - 1) / 2  # cell centers, crop pixels
        centers = (pixels - CROP_SIZE / 2) / (CROP_SIZE / 2)
        self.register_buffer("grid_x", centers.repeat(side))  # cell order of a flattened (side, side) map
        self.register_buffer("grid_y", centers.repeat_interleave(side))
        self.features_out = 3 * keypoints.NUM_KEYPOINTS

    def forward(self, stages: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        top = self.lateral[-1](stages[-1])
        for i in range(len(self.smooth) - 1, -1, -1):  # 6, 12, 24 px
            finer = self.lateral[i](stages[i + 1])
            # Upsampled to the finer map's size, not by a scale factor: the ONNX Resize then has fixed
            # sizes, which onnxruntime's quantization tools can infer (a scale also scaled the batch).
            top = self.smooth[i](nn.functional.interpolate(top, size=finer.shape[-2:], mode="nearest") + finer)
        return soft_argmax(self.logits(top).flatten(2), self.grid_x, self.grid_y)


def soft_argmax(logits: torch.Tensor, grid_x: torch.Tensor, grid_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, K, cells) heatmap logits and each cell's center -> ((N, 2K) expected x, y per point,
    (N, 3K) each point's spread in x, in y and its concentration: the sum of its squared
    probabilities, 1 for all of it in one cell, 1 / cells for a flat map. (Not the peak: ReduceMax
    takes its axes as an input since opset 18, and onnxruntime's quantization tools cannot infer
    its shape.)"""
    probability = torch.softmax(logits, dim=-1)
    x, y = probability @ grid_x, probability @ grid_y
    spread_x = (probability @ grid_x.square() - x.square()).clamp(min=1e-8).sqrt()
    spread_y = (probability @ grid_y.square() - y.square()).clamp(min=1e-8).sqrt()
    concentration = probability.square().sum(dim=-1)
    return torch.stack([x, y], dim=-1).flatten(1), torch.cat([spread_x, spread_y, concentration], dim=1)


class KeypointOutput(NamedTuple):
    """What KeypointNet gives in every mode. Its fields, where set, are the ONNX file's outputs in
    order (the exporter drops a None: a tuple flattens to its tensors)."""

    points: torch.Tensor  # (N, 30): x0, y0, x1, ... in [-1, 1]
    confidence: torch.Tensor | None = None  # (N, 15) in [0, 1]; None in training, without flip_tta or the spread layer


class KeypointNet(ServedNet):
    """Strided conv stages (96 -> 3 with five) and a small FC head (or a heatmap head) -> (N, 30) keypoints,
    as a `KeypointOutput` in every mode.

    The points are x0, y0, x1, y1, ... in the course order, normalized to [-1, 1] as
    (crop_pixel - 48) / 48. The head flattens the 3x3 map instead of pooling it globally: where a
    feature fires is exactly what a coordinate regressor needs.

    With `confidence`, a linear layer on what the head saw (its hidden units for the crop and for
    the mirrored crop, and how far the two predictions disagree) predicts each point's spread σ,
    and the eval-mode forward (flip_tta) also gives each point's confidence: the probability
    1 - exp(-r²/2σ²) that it lies within r = CONFIDENCE_RADIUS_PX crop pixels. The trunk does not
    change: `training.keypoint_confidence` fits that layer to a trained model's errors.
    """

    def __init__(
        self,
        widths=(24, 32, 64, 128, 256),
        hidden=256,
        dropout=0.1,
        flip_tta=False,
        confidence=False,
        head="fc",
        heatmap_width=64,
    ):
        super().__init__()
        if head not in KEYPOINT_HEADS:
            raise InputError(f"unknown keypoint head {head!r} (one of {', '.join(KEYPOINT_HEADS)})")
        stages, cin = [], 1
        for i, w in enumerate(widths):
            # The first stage is one conv: at 48x48 a second one would cost as much as the rest.
            stages.append(
                nn.Sequential(conv_bn(cin, w, 2)) if i == 0 else nn.Sequential(conv_bn(cin, w, 2), conv_bn(w, w))
            )
            cin = w
        self.features = nn.Sequential(*stages)
        if head == "heatmap":
            self.head = HeatmapHead(widths, heatmap_width)
            seen = self.head.features_out
        else:
            side = CROP_SIZE >> len(widths)
            self.head = nn.Sequential(
                nn.Flatten(),
                nn.Dropout(dropout),
                nn.Linear(cin * side * side, hidden),
                nn.ReLU(inplace=True),
                nn.Linear(hidden, 2 * keypoints.NUM_KEYPOINTS),
            )
            seen = hidden
        self.flip_tta = flip_tta
        # log σ (crop pixels) per point from [what the head saw, the same for the mirrored crop,
        # disagreement in crop pixels].
        self.spread = nn.Linear(2 * seen + keypoints.NUM_KEYPOINTS, keypoints.NUM_KEYPOINTS) if confidence else None
        # Pixel statistics of the training crops; set by the trainer, saved in the state_dict.
        self.register_buffer("pixel_mean", torch.tensor(0.5))
        self.register_buffer("pixel_std", torch.tensor(0.25))
        self.register_buffer("flip_index", torch.tensor(list(keypoints.FLIP_PERMUTATION)))

    def regress_with_hidden(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 30) keypoints and what the head saw when it made them: the FC head's (N, hidden)
        units, or the heatmap head's spread and concentration per point."""
        x = (x - self.pixel_mean) / self.pixel_std
        if isinstance(self.head, HeatmapHead):
            stages = []
            for stage in self.features:
                x = stage(x)
                stages.append(x)
            return self.head(stages)
        hidden = self.head[:-1](self.features(x))
        return self.head[-1](hidden), hidden

    def regress(self, x: torch.Tensor) -> torch.Tensor:
        return self.regress_with_hidden(x)[0]

    def unmirror(self, mirrored: torch.Tensor) -> torch.Tensor:
        """Points predicted on the mirrored crop -> this crop's: pixel x -> 95 - x is n -> -n - 1/48
        normalized, and left/right points swap."""
        mirrored = mirrored.reshape(-1, keypoints.NUM_KEYPOINTS, 2).index_select(1, self.flip_index)
        return torch.stack([-mirrored[..., 0] - 2.0 / CROP_SIZE, mirrored[..., 1]], dim=-1).flatten(1)

    def both_ways(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(averaged keypoints (N, 30), what the spread layer reads (N, 2 * hidden + 15)) for the
        crop and its mirror image."""
        # One pass over the crops and their mirror images together: one batch of 2N runs faster
        # than two of N, most of all at N = 1, a face at a time (bench/, docs/benchmarks.md).
        both, both_hidden = self.regress_with_hidden(torch.cat([x, torch.flip(x, dims=[3])]))
        n = x.shape[0]
        y, mirrored, hidden, mirrored_hidden = both[:n], both[n:], both_hidden[:n], both_hidden[n:]
        back = self.unmirror(mirrored)
        half = CROP_SIZE / 2
        # sqrt of a sum, not .norm(): onnxruntime's quantization tools cannot infer ReduceL2's shape.
        disagreement = (y - back).reshape(-1, keypoints.NUM_KEYPOINTS, 2).square().sum(dim=-1).sqrt() * half
        return (y + back) / 2, torch.cat([hidden, mirrored_hidden, disagreement], dim=1)

    def forward(self, x: torch.Tensor) -> KeypointOutput:
        if not self.flip_tta or self.training:
            return KeypointOutput(self.regress(x))
        points, seen = self.both_ways(x)
        if self.spread is None:
            return KeypointOutput(points)
        return KeypointOutput(points, confidence_within(self.spread(seen), keypoints.CONFIDENCE_RADIUS_PX))

    def outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [output for output in self(x) if output is not None]


def confidence_within(log_sigma: torch.Tensor, radius: float) -> torch.Tensor:
    """P(a 2-D isotropic Gaussian error of spread σ is within `radius`) = 1 - exp(-radius²/2σ²)."""
    return 1 - torch.exp(-0.5 * radius**2 * torch.exp(-2 * log_sigma))


# --- registry and checkpoints -------------------------------------------------------------------

# The name a checkpoint carries in its "model" key -> the class its "model_args" construct.
MODELS: dict[str, type[ServedNet]] = {
    "digits_cnn": DigitCNN,
    "digits_mlp": MLPClassifier,
    "keypoints": KeypointNet,
}


def build(name: str, model_args: dict | None = None) -> ServedNet:
    """A fresh model `name` from its constructor arguments; unknown names or arguments -> InputError."""
    if name not in MODELS:
        raise InputError(f"unknown model {name!r} (one of {', '.join(MODELS)})")
    model_args = dict(model_args or {})
    accepted = inspect.signature(MODELS[name]).parameters
    unknown = sorted(set(model_args) - set(accepted))
    if unknown:
        raise InputError(f"{name}: unknown model_args {', '.join(unknown)} (accepted: {', '.join(accepted) or 'none'})")
    return MODELS[name](**model_args)


def legacy_model_args(name: str, config: dict) -> dict:
    """Constructor arguments of a checkpoint written before checkpoints had "model_args".

    Those (the shipped models/*.pt among them) hold only the trainer's config, from a few of
    whose fields the trainer built the model. New checkpoints never come here.
    """
    fields = {  # config field -> constructor argument, as the trainers used them then
        "digits_cnn": {"cnn_channels": "channels"},
        "digits_mlp": {},
        "keypoints": {"widths": "widths", "hidden": "hidden", "dropout": "dropout", "flip_tta": "flip_tta"},
    }[name]
    missing = sorted(set(fields) - set(config))
    if missing:
        raise InputError(f"{name} checkpoint has no model_args and no {', '.join(missing)} in its config")
    return {arg: tuple(config[key]) if isinstance(config[key], list) else config[key] for key, arg in fields.items()}


def model_from_checkpoint(checkpoint: dict, expected: str | None = None) -> ServedNet:
    """A checkpoint dict (`training.common.load_checkpoint`) -> its model, weights loaded, in eval mode.

    Refuses, with a one-line InputError, a model name not in the registry or other than
    `expected`, unknown constructor arguments and weights that do not fit the model exactly.
    """
    name = checkpoint.get("model")
    if name not in MODELS:
        raise InputError(f"not a model checkpoint: model {name!r} is none of {', '.join(MODELS)}")
    if expected is not None and name != expected:
        raise InputError(f"expected a {expected} checkpoint, got a {name} one")
    if "model_args" in checkpoint:
        model_args = checkpoint["model_args"]
    else:
        model_args = legacy_model_args(name, checkpoint.get("config", {}))
    model = build(name, model_args)
    try:
        model.load_state_dict(checkpoint["state_dict"])  # strict: every key, every shape
    except (KeyError, RuntimeError) as e:
        reason = " ".join(str(e).split())[:300]
        raise InputError(f"{name}: the checkpoint's weights do not fit its model ({reason})") from None
    return model.eval()
