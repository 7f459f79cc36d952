"""onnxruntime sessions for the models in the manifest (YuNet included), on the execution provider that really loads.

`VISION_INT8=1` serves the int8 variant of a model where `python -m export.optimize` kept one
(listed in the manifest as NAME_int8); the others stay float32. `VISION_PROVIDER` picks: `auto`
(default) tries CUDA and falls back to the CPU, `cpu` never touches CUDA, `cuda` refuses to start
unless CUDA really loads. "Really" means what the session
reports after creation (`session.get_providers()`), not what the wheel advertises: onnxruntime-gpu
lists CUDAExecutionProvider even when libcudart or cuDNN is missing, and then quietly runs on the CPU.
"""

import logging
import sys

import numpy as np

from service.settings import Settings, SettingsError
from vision.manifest import ManifestError, ModelEntry, read_manifest, verified_model
from vision.onnx_model import CPU, OnnxModel
from vision.signatures import INPUT_NAME, SIGNATURES, Signature

logger = logging.getLogger("bentoml.vision")

CUDA = "CUDAExecutionProvider"


class StartupError(RuntimeError):
    """The service cannot start; the message is one line that says why."""


def served_name(name: str, manifest: dict, int8: bool) -> str:
    """The manifest entry that serves `name`: its int8 variant if asked for and kept, else itself."""
    variant = f"{name}_int8"
    return variant if int8 and variant in manifest["models"] else name


def check_before_start() -> Settings:
    """Cheap start-up checks for the serving process, before any worker is spawned: the settings,
    and every model file against its manifest hash. Exits with one line on failure."""
    try:
        settings = Settings.from_environment()
        manifest = read_manifest(settings.manifest)
        for name in SIGNATURES:
            verified_model(served_name(name, manifest, settings.int8), settings.manifest, manifest)
        verified_model("yunet", settings.manifest, manifest)
        if settings.provider == "cuda":
            requested_providers(settings.provider)
    except (StartupError, ManifestError, SettingsError) as e:
        print(f"vision: cannot start: {e}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    return settings


def requested_providers(choice: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if choice == "cuda" and CUDA not in available:
        raise StartupError(
            f"VISION_PROVIDER=cuda, but this onnxruntime ({ort.__version__}) has no "
            f"CUDAExecutionProvider (available: {', '.join(available)}); install onnxruntime-gpu"
        )
    return [CUDA, CPU] if choice != "cpu" and CUDA in available else [CPU]


def load_onnx(entry: ModelEntry, choice: str, threads: int = 1, input_name: str = INPUT_NAME) -> OnnxModel:
    """A verified model (`vision.onnx_model`) on the requested provider (VISION_PROVIDER), or a
    StartupError that says in one line why not. Its memory pool (onnxruntime's arena) is kept: it
    grows to the largest input seen, which for YuNet is bounded by VISION_DETECT_MAX_SIDE, and saves
    YuNet 1.2 ms of allocation per photo."""
    try:
        # Requests run side by side (threads and workers), each call is small: one thread per call,
        # and no spinning, which would burn the CPU that the other requests need (bench/compare.py).
        # Errors only in the log: a CUDA fallback is reported by us, below.
        model = OnnxModel(
            entry.path, requested_providers(choice), threads=threads, spinning=False, quiet=True, input_name=input_name
        )
    except StartupError:
        raise
    except Exception as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise StartupError(f"{entry.path}: onnxruntime cannot load {entry.name!r}: {first_line}") from None
    if choice == "cuda" and model.provider != CUDA:
        raise StartupError(
            f"VISION_PROVIDER=cuda, but CUDA did not load for {entry.name!r} "
            f"(session providers: {', '.join(model.providers)}); check the NVIDIA driver, CUDA 12 and cuDNN 9"
        )
    return model


class Model:
    """One verified ONNX model of the manifest, its signature checked. `model(x)` -> the first
    output; `model.outputs(x)` -> all of them (the keypoint model's confidence too)."""

    def __init__(self, entry: ModelEntry, choice: str, signature: Signature | None = None, threads: int = 1):
        # An int8 variant (NAME_int8) keeps the signature of the model it stands in for.
        self.entry, self.signature = entry, signature or SIGNATURES[entry.name]
        self.onnx = load_onnx(entry, choice, threads)
        self.providers = self.onnx.providers
        self._check_signature()

    @property
    def provider(self) -> str:
        return self.providers[0]

    def _check_signature(self) -> None:
        inputs, outputs = self.onnx.session.get_inputs()[0], self.onnx.session.get_outputs()
        got_in = tuple(inputs.shape[1:])
        got_out = [(o.name, tuple(o.shape[1:])) for o in outputs]
        want_out = list(zip(self.signature.output_names, self.signature.output_shapes, strict=True))
        if inputs.name != INPUT_NAME or got_in != self.signature.input or got_out != want_out:
            raise StartupError(
                f"{self.entry.path}: {self.entry.name!r} takes {inputs.name!r} {got_in} -> "
                f"{_named_shapes(got_out)} per item, "
                f"expected {INPUT_NAME!r} {self.signature.input} -> {_named_shapes(want_out)}"
            )

    def outputs(self, batch: np.ndarray) -> list[np.ndarray]:
        return self.onnx.outputs(batch)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.onnx(batch)

    def warm_up(self) -> None:
        """Run once on zeros, so the first request does not pay for lazy allocation."""
        for n in (1, 4):
            outputs = self.outputs(np.zeros((n, *self.signature.input), np.float32))
            shapes = [(n, *shape) for shape in self.signature.output_shapes]
            if [o.shape for o in outputs] != shapes or not all(np.isfinite(o).all() for o in outputs):
                raise StartupError(
                    f"{self.entry.path}: warm-up of {self.entry.name!r} gave {[o.shape for o in outputs]}, "
                    "non-finite or wrong"
                )

    def describe(self) -> dict:
        info = self.entry.info
        return {
            "file": info.get("file"),
            "sha256": self.entry.sha256,
            "variant_of": info.get("variant_of"),  # set for an int8 variant (VISION_INT8=1)
            "inputs": info.get("inputs"),
            "outputs": info.get("outputs"),
            "opset": info.get("opset"),
            "metrics": info.get("metrics", {}),
            "providers": self.providers,
        }


def _named_shapes(outputs: list[tuple[str, tuple]]) -> str:
    """Outputs' names and per-item shapes, for a one-line error: 'keypoints' (30,), ..."""
    return ", ".join(f"{name!r} {shape}" for name, shape in outputs)


def load_models(settings: Settings, names: tuple[str, ...] = tuple(SIGNATURES)) -> dict[str, Model]:
    """The models `names` (default: every model the service needs), verified against the
    manifest, loaded and warmed up."""
    manifest = read_manifest(settings.manifest)
    models = {}
    for name in names:
        signature = SIGNATURES[name]
        entry = verified_model(served_name(name, manifest, settings.int8), settings.manifest, manifest)
        model = Model(entry, settings.provider, signature, settings.ort_threads)
        model.warm_up()
        models[name] = model
        logger.info("loaded %s (%s, sha256 %s…) on %s", name, entry.path.name, entry.sha256[:12], model.provider)
    if settings.provider == "auto" and any(m.provider != CUDA for m in models.values()):
        import onnxruntime as ort

        if CUDA in ort.get_available_providers():
            logger.warning("CUDAExecutionProvider is installed but did not load; running on the CPU")
    return models


def load_detectors(settings: Settings) -> dict:
    """Both face detectors, by name: YuNet (verified against the manifest) and Haar."""
    from vision.detectors import YUNET_INPUT, HaarDetector, YuNetDetector

    yunet = verified_model("yunet", settings.manifest)
    network = load_onnx(yunet, settings.provider, settings.ort_threads, input_name=YUNET_INPUT)
    try:
        detectors = [
            YuNetDetector(
                yunet.path, settings.face_score, settings.face_nms, settings.detect_max_side, network=network
            ),
            HaarDetector(),
        ]
    except Exception as e:  # OpenCV's and onnxruntime's own errors are long; one line is enough
        raise StartupError(
            f"{yunet.path}: the face detector does not load: {str(e).strip().splitlines()[-1]}"
        ) from None
    logger.info(
        "loaded yunet (%s, sha256 %s…) on %s and the Haar cascade",
        yunet.path.name,
        yunet.sha256[:12],
        network.provider,
    )
    return {detector.name: detector for detector in detectors}
