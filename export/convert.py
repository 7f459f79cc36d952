"""A PyTorch model -> one self-contained ONNX file with a dynamic batch axis."""

import logging
from pathlib import Path

import onnx
import torch

from export.specs import Spec
from vision.signatures import INPUT_NAME

OPSET = 18


def to_onnx(model: torch.nn.Module, spec: Spec, path: Path) -> None:
    """Export with the dynamo exporter; input `image` (N,1,H,W) float32 in [0,1]."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The exporter warns about torchvision ops it cannot register; none is used here.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    sample = torch.rand(2, *spec.signature.input)
    partial = path.with_suffix(".partial.onnx")
    torch.onnx.export(
        model.eval(),
        (sample,),
        str(partial),
        dynamo=True,
        input_names=[INPUT_NAME],
        output_names=spec.signature.output_names,
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        opset_version=OPSET,
        external_data=False,  # one file per model: the service and the manifest hash one file
        verbose=False,
    )
    check(partial)
    partial.replace(path)


def check(path: Path) -> onnx.ModelProto:
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    return model


def describe(path: Path) -> dict:
    """Input/output names, shapes (symbolic batch as "batch") and the opset of an ONNX file."""
    model = onnx.load(str(path))

    def tensors(values):
        return [
            {
                "name": v.name,
                "shape": ["batch" if d.dim_param else d.dim_value for d in v.type.tensor_type.shape.dim],
                "dtype": onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name,
            }
            for v in values
        ]

    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return {"inputs": tensors(model.graph.input), "outputs": tensors(model.graph.output), "opset": opset}
