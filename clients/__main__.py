"""Call the service from the command line.

    python -m clients digit path/to/digit.png [--model mlp]
    python -m clients faces photo.jpg --out annotated.jpg
    python -m clients keypoints face_crop.png --out annotated.png
"""

import argparse
import json
import sys
from pathlib import Path

import cv2

from clients.api import DEFAULT_URL, ServiceError, VisionClient, keypoint_array
from clients.overlay import draw_faces
from vision import draw


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("endpoint", choices=["digit", "keypoints", "faces"])
    parser.add_argument("image", type=Path)
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the service (default {DEFAULT_URL})")
    parser.add_argument("--model", default="cnn", choices=["cnn", "mlp"], help="digit model")
    parser.add_argument("--out", type=Path, help="write the image with the answer drawn on it")
    args = parser.parse_args(argv)

    image = cv2.imread(str(args.image), cv2.IMREAD_COLOR)
    if image is None:
        sys.exit(f"error: {args.image}: missing or not an image")
    try:
        with VisionClient(args.url) as client:
            if args.endpoint == "digit":
                answer = client.digit(args.image, args.model)
            elif args.endpoint == "keypoints":
                answer = {"keypoints": client.keypoints(args.image)}
                draw.draw_keypoints(image, keypoint_array(answer["keypoints"]))
            else:
                answer = client.faces(args.image)
                draw_faces(image, answer)
    except ServiceError as e:
        sys.exit(f"error: {e}")
    print(json.dumps(answer, indent=2))
    if args.out and args.endpoint != "digit":
        cv2.imwrite(str(args.out), image)
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
