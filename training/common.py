"""What every training run shares: the config CLI, seeding, checkpoints, metrics JSON, curve plots."""

import argparse
import dataclasses
import json
import random
import types
import typing
from pathlib import Path

import numpy as np
import torch

from vision.errors import InputError


def option(default, help: str, **argparse_kwargs) -> dataclasses.Field:
    """A config dataclass field and its command-line help (plus e.g. choices= or metavar=)."""
    return dataclasses.field(default=default, metadata={"help": help, **argparse_kwargs})


def _as_help_default(value) -> str:
    """A default as --help shows it: a switch on/off, a tuple as the values one types, "" quoted."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (tuple, list)):
        return " ".join(map(str, value))
    return repr(value) if value == "" else str(value)


def config_parser(
    config_cls: type, prog: str, description: str, model_defaults: dict[str, dict] | None = None
) -> argparse.ArgumentParser:
    """One flag per field of a config dataclass.

    field_name -> --field-name; bool -> --x/--no-x; tuple[T, ...] -> one or more T, tuple[T, T]
    -> exactly two; `T | None` -> T, where None (the default only) means "the model's default",
    filled in by the config's `resolved()` from `model_defaults` ({model: {field: value}}).
    The help is the field's `option(help=...)` and its default (per model where it has one).
    """
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    hints = typing.get_type_hints(config_cls)
    for field in dataclasses.fields(config_cls):
        kind = hints[field.name]
        if typing.get_origin(kind) in (typing.Union, types.UnionType):
            kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        kwargs = {k: v for k, v in field.metadata.items() if k != "help"}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is tuple:
            items = typing.get_args(kind)
            kwargs |= {"type": items[0], "nargs": "+" if items[-1] is Ellipsis else len(items)}
        else:
            kwargs["type"] = kind
        action = parser.add_argument("--" + field.name.replace("_", "-"), default=field.default, **kwargs)
        if field.default is None:
            shown = ", ".join(
                f"{m} {_as_help_default(d[field.name])}" for m, d in (model_defaults or {}).items() if field.name in d
            )
        else:
            shown = _as_help_default(field.default)
        text = field.metadata.get("help", "") + (f" (default: {shown})" if shown else "")
        action.help = text.strip().replace("%", "%%")  # set here: BooleanOptionalAction adds its own
    return parser


def parse_config(
    config_cls: type, argv: list[str] | None, prog: str, description: str, model_defaults: dict[str, dict] | None = None
):
    """The command line -> `config_cls(...).resolved()`; a config it refuses is a usage error."""
    parser = config_parser(config_cls, prog, description, model_defaults)
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in vars(parser.parse_args(argv)).items()}
    try:
        return config_cls(**values).resolved()
    except InputError as e:
        parser.error(str(e))


def fill_defaults(config, defaults: dict):
    """A copy of the config dataclass with its None fields taken from `defaults` ({field: value})."""
    return dataclasses.replace(config, **{k: v for k, v in defaults.items() if getattr(config, k) is None})


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; returns a torch generator for the data order."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def save_checkpoint(
    path: Path, model_name: str, model_args: dict, config: dict, model: torch.nn.Module, metrics: dict
) -> None:
    """Plain data, loadable with torch.load(weights_only=True): the registry name and constructor
    arguments that rebuild the model (`training.models.model_from_checkpoint`), its state_dict,
    and the training config and metrics that made it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    checkpoint = {
        "model": model_name,
        "model_args": model_args,
        "config": config,
        "state_dict": state,
        "metrics": metrics,
    }
    partial = path.with_suffix(".partial")
    torch.save(checkpoint, partial)
    partial.replace(path)


def load_checkpoint(path: Path) -> dict:
    return torch.load(Path(path), map_location="cpu", weights_only=True)


def write_json(path: Path, data: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def plot_curves(history: list[dict], path: Path, title: str) -> None:
    """One panel per metric (each key of the per-epoch dicts but 'epoch'), train and val overlaid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = sorted({k.split("_", 1)[1] for row in history for k in row if "_" in k and k != "epoch"})
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
    epochs = [row["epoch"] for row in history]
    for ax, metric in zip(axes[0], metrics):
        for split in ("train", "val"):
            key = f"{split}_{metric}"
            if any(key in row for row in history):
                ax.plot(epochs, [row.get(key, np.nan) for row in history], marker=".", label=split)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
