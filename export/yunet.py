"""YuNet for onnxruntime: the published file with its input and output sizes left open.

    python -m export.yunet        # models/yunet/face_detection_yunet_2023mar.onnx -> ..._dynamic.onnx

The published YuNet file declares a fixed 1x3x640x640 input. OpenCV's `cv2.FaceDetectorYN`
ignores that and reshapes the network to each image, but onnxruntime holds a model to its declared
sizes. The network itself takes any height and width that are multiples of 32 (its reshapes are
(1, -1, k) and its upsampling is by scale), so this copy only renames the fixed sizes to symbols:
the same nodes, the same weights, checked here. onnxruntime then runs it at each image's own size,
2.2x faster than OpenCV's DNN module on this CPU, and on CUDA when present (docs/service.md).
"""

import argparse
import sys
from pathlib import Path

import onnx

from vision.detectors import YUNET_MODEL, YUNET_PUBLISHED

INPUT_SIZES = (1, 3, "height", "width")  # one BGR image: the reshapes to (1, -1, k) fix the batch at 1


def open_sizes(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy with the input's height and width and every output's anchor count symbolic, and no
    stored intermediate shapes (they were worked out for 640x640)."""
    dynamic = onnx.ModelProto()
    dynamic.CopyFrom(model)
    (image,) = dynamic.graph.input
    for dim, size in zip(image.type.tensor_type.shape.dim, INPUT_SIZES, strict=True):
        if isinstance(size, str):
            dim.Clear()
            dim.dim_param = size
    for output in dynamic.graph.output:  # (1, anchors, k): anchors = (height / stride) * (width / stride)
        anchors = output.type.tensor_type.shape.dim[1]
        anchors.Clear()
        anchors.dim_param = f"anchors_{output.name.split('_')[-1]}"
    del dynamic.graph.value_info[:]
    return dynamic


def same_network(a: onnx.ModelProto, b: onnx.ModelProto) -> bool:
    """The same nodes and weights; only the declared input/output sizes may differ."""
    return (
        list(a.graph.node) == list(b.graph.node)
        and list(a.graph.initializer) == list(b.graph.initializer)
        and [i.name for i in a.graph.input] == [i.name for i in b.graph.input]
        and [o.name for o in a.graph.output] == [o.name for o in b.graph.output]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m export.yunet", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--published", type=Path, default=YUNET_PUBLISHED, help="the YuNet file as published")
    parser.add_argument("--out", type=Path, default=YUNET_MODEL, help="where the open-size copy goes")
    args = parser.parse_args(argv)
    try:
        published = onnx.load(str(args.published))
    except (OSError, onnx.onnx_cpp2py_export.checker.ValidationError) as e:
        sys.exit(f"error: {args.published}: {e}")
    dynamic = open_sizes(published)
    onnx.checker.check_model(dynamic)
    if not same_network(published, dynamic):
        sys.exit("error: the open-size copy differs from the published network")
    onnx.save(dynamic, str(args.out))
    print(f"wrote {args.out} (input {INPUT_SIZES}); run `python -m export --check` to refresh the manifest's hash")


if __name__ == "__main__":
    main()
