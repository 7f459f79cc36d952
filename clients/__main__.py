"""Call the service from the command line.

    python -m clients digit path/to/digit.png [--model mlp] [--out labelled.png]
    python -m clients number photo_of_a_number.jpg [--out boxed.png]
    python -m clients faces photo.jpg --out annotated.jpg [--json]
    python -m clients keypoints face_crop.png --out annotated.png

Without --out the service's JSON answer is printed; with --out the image with the answer drawn on
it is written and one summary line printed (add --json for the JSON too; the summary then goes to
stderr). The service is --url, else $VISION_URL, else http://127.0.0.1:3000.
"""

import argparse
import json
import sys
from pathlib import Path

import cv2

from clients.api import URL_HELP, ImageError, ServiceError, VisionClient, keypoint_array, read_image, service_url
from clients.overlay import draw_digit, draw_faces, draw_number, with_model_inputs
from vision import draw


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m clients", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("endpoint", choices=["digit", "number", "keypoints", "faces"])
    parser.add_argument("image", type=Path)
    parser.add_argument("--url", help=URL_HELP)
    parser.add_argument("--model", default="cnn", choices=["cnn", "mlp"], help="digit model")
    parser.add_argument(
        "--out",
        "--show",
        type=Path,
        help="write the image with the answer drawn on it (.jpg, .png, ...); for digit and number, "
        "with the 28x28 images the model saw beneath",
    )
    parser.add_argument("--json", action="store_true", help="with --out, also print the JSON answer")
    args = parser.parse_args(argv)

    if args.out is not None:  # refuse before asking the service
        if not cv2.haveImageWriter(str(args.out)):
            sys.exit(f"error: {args.out}: cannot write that image type; use e.g. .jpg or .png")
        if not args.out.resolve().parent.is_dir():
            sys.exit(f"error: {args.out}: the folder {args.out.parent} does not exist")
    try:
        data, image = read_image(args.image)
        with VisionClient(args.url or service_url()) as client:
            if args.endpoint == "digit":
                answer = client.digit(data, args.model, debug=args.out is not None)
                image = with_model_inputs(draw_digit(image, answer), [answer["input_png"]] if args.out else [])
                summary = f"digit {answer['digit']} ({answer['confidence']:.1%}, {answer['model']})"
            elif args.endpoint == "number":
                answer = client.number(data, args.model, debug=args.out is not None)
                inputs = [d["input_png"] for d in answer["digits"]] if args.out else []
                image = with_model_inputs(draw_number(image, answer), inputs)
                summary = f"number {answer['number'] or '(none)'} ({answer['model']})"
            elif args.endpoint == "keypoints":
                answer = {"keypoints": client.keypoints(data)}
                draw.draw_keypoints(image, keypoint_array(answer["keypoints"]))
                summary = _plural(len(answer["keypoints"]), "keypoint")
            else:
                answer = client.faces(data)
                draw_faces(image, answer)
                summary = _plural(len(answer["faces"]), "face")
    except (ImageError, ServiceError) as e:
        sys.exit(f"error: {e}")

    if args.out is None or args.json:
        print(json.dumps(answer, indent=2))
    if args.out is not None:
        try:
            written = cv2.imwrite(str(args.out), image)
        except cv2.error:
            written = False
        if not written:
            sys.exit(f"error: could not write {args.out}")
        print(f"{summary} -> {args.out}", file=sys.stderr if args.json else sys.stdout)


if __name__ == "__main__":
    main()
