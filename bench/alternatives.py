"""What the service is measured against: the Flask app a user would write by hand.

    python -m bench.alternatives --backend torch|onnx [--port 5000]

One process, Flask's threaded server, the models loaded at import, as tutorials do it. Each request
does exactly the service's work (the same decoding, the same vision/ preprocessing, the same answer
JSON), so `python -m bench.compare` measures the serving stack, not different work:
- `torch`: the `.pt` checkpoints in torch eager mode (needs the `train` extra);
- `onnx`: the same ONNX files the service serves, in plain onnxruntime sessions.
Refusals are 400s with {"error": ...}; no limits, metrics or batching beyond what Flask gives.
"""

import argparse
from pathlib import Path

import numpy as np
from flask import Flask, jsonify, request

from vision.signatures import softmax

MODELS = Path(__file__).resolve().parents[1] / "models"
NAMES = ("digits_cnn", "digits_mlp", "keypoints")


def torch_models() -> dict:
    import torch

    from export.parity import torch_outputs
    from training.common import load_checkpoint
    from training.models import model_from_checkpoint

    def runner(name: str):
        model = model_from_checkpoint(load_checkpoint(MODELS / f"{name}.pt"), expected=name)

        def run(batch: np.ndarray) -> list[np.ndarray]:  # the outputs, as onnxruntime lists them
            with torch.inference_mode():
                return torch_outputs(model, batch)

        return run

    return {name: runner(name) for name in NAMES}


def onnx_models() -> dict:
    from vision.onnx_model import OnnxModel

    return {name: OnnxModel(MODELS / f"{name}.onnx").outputs for name in NAMES}


def create_app(backend: str) -> Flask:
    from service.images import FACE_DETAIL_SIDE, decode_reduced
    from vision.detectors import YuNetDetector
    from vision.digits import WORK_SIDE, to_mnist, to_model_input
    from vision.errors import InputError
    from vision.faces import find_faces
    from vision.manifest import verified_model

    models = torch_models() if backend == "torch" else onnx_models()
    detector = YuNetDetector(verified_model("yunet").path)
    max_bytes, max_pixels = 10 * 1024 * 1024, 40_000_000
    app = Flask(__name__)

    @app.errorhandler(InputError)
    def refused(error):
        return jsonify(error=str(error)), 400

    @app.post("/digit")
    def digit():
        model = request.form.get("model", "cnn")
        mnist = to_mnist(decode_reduced(request.files["image"].read(), WORK_SIDE, max_bytes, max_pixels)[0])
        probabilities = softmax(models[f"digits_{model}"](to_model_input(mnist[None]))[0])[0]
        return jsonify(
            digit=int(probabilities.argmax()),
            confidence=round(float(probabilities.max()), 6),
            probabilities=[round(float(p), 6) for p in probabilities],
            model=model,
            input_png=None,
        )

    @app.post("/faces")
    def faces():
        picture, factor, (width, height) = decode_reduced(
            request.files["image"].read(), FACE_DETAIL_SIDE, max_bytes, max_pixels
        )
        found = find_faces(picture, detector, models["keypoints"])
        return jsonify(width=width, height=height, faces=[face.scaled(factor).as_dict() for face in found])

    @app.post("/digits_array")
    def digits_array():
        images = np.asarray(request.get_json()["images"], dtype=np.float32)
        return jsonify(softmax(models["digits_cnn"](images)[0]).tolist())

    @app.get("/readyz")
    def ready():
        return "ok"

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.alternatives", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["torch", "onnx"], required=True)
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    create_app(args.backend).run(host="127.0.0.1", port=args.port, threaded=True)


if __name__ == "__main__":
    main()
