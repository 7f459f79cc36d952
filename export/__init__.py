"""Checkpoints -> ONNX, with a numeric parity gate and `models/manifest.json`.

python -m export            # export every shipped checkpoint, gate it, write the manifest
python -m export --check    # gate the ONNX files already there, and check the manifest
"""
