"""`models/manifest.json`: which ONNX files the service may load, and their sha256.

Written by `python -m export`; read by the service, which refuses any model whose bytes do not
match. Torch-free, so both sides share one reader.

    {"models": {"digits_cnn": {"file": "digits_cnn.onnx", "sha256": "...", "inputs": [...],
                               "outputs": [...], "opset": 18, "metrics": {...}, ...}, ...},
     "git_commit": "...", "created": "..."}
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "models" / "manifest.json"


class ManifestError(RuntimeError):
    """The manifest or a model it names is missing, corrupt or does not match its hash."""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    path: Path
    sha256: str
    info: dict  # the whole manifest entry: inputs, outputs, opset, metrics, parity, ...


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(path: Path = DEFAULT_PATH) -> dict:
    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestError(f"{path}: model manifest not found (run `python -m export`)") from None
    except (OSError, json.JSONDecodeError) as e:
        raise ManifestError(f"{path}: unreadable model manifest ({e})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("models"), dict):
        raise ManifestError(f"{path}: manifest has no 'models' table")
    return manifest


def verified_model(name: str, manifest_path: Path = DEFAULT_PATH, manifest: dict | None = None) -> ModelEntry:
    """The manifest entry for `name`, after checking that its file exists and matches its sha256."""
    manifest_path = Path(manifest_path)
    manifest = manifest if manifest is not None else read_manifest(manifest_path)
    entry = manifest["models"].get(name)
    if entry is None:
        raise ManifestError(f"{manifest_path}: no model named {name!r}")
    try:
        path = manifest_path.parent / entry["file"]
        expected = entry["sha256"]
    except (KeyError, TypeError):
        raise ManifestError(f"{manifest_path}: entry {name!r} lacks 'file' or 'sha256'") from None
    if not path.is_file():
        raise ManifestError(f"{path}: model file for {name!r} is missing")
    actual = sha256_of(path)
    if actual != expected:
        raise ManifestError(f"{path}: sha256 {actual[:12]}… does not match the manifest's {expected[:12]}…")
    return ModelEntry(name, path, expected, entry)
