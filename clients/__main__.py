"""Call the service from the command line, on one image or many.

    python -m clients digit path/to/digit.png [--model mlp] [--out labelled.png]
    python -m clients number photo_of_a_number.jpg [--out boxed.png]
    python -m clients faces photo.jpg --out annotated.jpg [--json]
    python -m clients keypoints face_crop.png --out annotated.png
    python -m clients faces photos/ more.jpg --concurrency 8 [--out annotated/]   # many images

One image: without --out the service's JSON answer is printed; with --out the image with the answer
drawn on it is written and one summary line printed (add --json for the JSON too; the summary then
goes to stderr). Several images (or a folder: the image files in it) are sent --concurrency at a
time; each gets one JSON line, {"image": PATH, ...answer} or {"image": PATH, "error": ...}, in the
order given, and with --out FOLDER its drawing is written there under its own name (.jpg added to
a HEIC's, which OpenCV cannot write). --jsonl gives
that one-line form for a single image too. The exit status is 1 if any image failed. The service
is --url, else $VISION_URL, else http://127.0.0.1:3000; its API key, if it wants one, --api-key,
else $VISION_API_KEY (a missing or refused key stops the run with one line).
"""

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
from tqdm import tqdm

from clients.api import (
    API_KEY_HELP,
    URL_HELP,
    AsyncVisionClient,
    ImageError,
    ServiceError,
    ServiceUnauthorized,
    read_image,
    service_url,
)
from clients.overlay import draw_digit, draw_faces, draw_keypoints_answer, draw_number, with_model_inputs

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".heic", ".heif", ".avif", ".tif", ".tiff"}
CONCURRENCY = 4


class UsageError(ValueError):
    """A command line that cannot be run (the message is one line)."""


@dataclass
class Done:
    """One image's outcome: the answer and its drawing, or an error."""

    path: Path
    answer: dict | None = None  # as JSON, as the service answered it
    drawn: object = None  # the BGR image with the answer drawn on it, when --out asks for it
    summary: str = ""
    error: str | None = None


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def image_paths(arguments: list[Path]) -> list[Path]:
    """The files named, with each folder replaced by the image files in it (sorted by name)."""
    paths = []
    for argument in arguments:
        if argument.is_dir():
            found = sorted(p for p in argument.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise UsageError(f"{argument}: no image files in this folder ({', '.join(sorted(IMAGE_SUFFIXES))})")
            paths += found
        else:
            paths.append(argument)
    return paths


def drawing_name(path: Path) -> str:
    """An image's drawing in the --out folder: under the image's own name, with .jpg added where
    OpenCV cannot write that type (HEIC)."""
    return path.name if cv2.haveImageWriter(path.name) else f"{path.name}.jpg"


def check_out(out: Path, paths: list[Path], several: bool) -> None:
    """Refuse an --out that cannot be written, before anything is sent."""
    if several:
        if out.exists() and not out.is_dir():
            raise UsageError(f"{out}: with several images --out is a folder, and this is a file")
        names = [drawing_name(p) for p in paths]
        clash = next((n for n in names if names.count(n) > 1), None)
        if clash:
            raise UsageError(f"two images are named {clash}: their drawings would overwrite each other in {out}")
        out.mkdir(parents=True, exist_ok=True)
        targets = [out / name for name in names]
    else:
        targets = [out]
    for target in targets:
        if not cv2.haveImageWriter(str(target)):
            raise UsageError(f"{target}: cannot write that image type; use e.g. .jpg or .png")
    if not out.resolve().parent.is_dir():
        raise UsageError(f"{out}: the folder {out.parent} does not exist")


async def ask(client: AsyncVisionClient, endpoint: str, path: Path, model: str, draw_it: bool) -> Done:
    """Read one image, ask the service, and draw its answer if asked to."""
    try:
        data, image = await asyncio.to_thread(read_image, path)
        if endpoint == "digit":
            answer = await client.digit(data, model, debug=draw_it)
            if draw_it:
                image = with_model_inputs(draw_digit(image, answer), [answer["input_png"]])
            summary = f"digit {answer['digit']} ({answer['confidence']:.1%}, {answer['model']})"
        elif endpoint == "number":
            answer = await client.number(data, model, debug=draw_it)
            if draw_it:
                image = with_model_inputs(draw_number(image, answer), [d["input_png"] for d in answer["digits"]])
            summary = f"number {answer['number'] or '(none)'} ({answer['model']})"
        elif endpoint == "keypoints":
            record = await client.keypoints(data)
            draw_keypoints_answer(image, record)
            answer, summary = record.as_json(), _plural(len(record.keypoints), "keypoint")
        else:
            record = await client.faces(data)
            draw_faces(image, record.faces)
            answer, summary = record.as_json(), _plural(len(record.faces), "face")
    except ServiceUnauthorized:
        raise  # no image will get through without the key: the whole run stops, in one line
    except (ImageError, ServiceError) as e:
        return Done(path, error=str(e))
    return Done(path, answer, image if draw_it else None, summary)


async def ask_all(args, paths: list[Path]):
    """Every image's Done, in the order given, with at most --concurrency requests at once."""
    gate = asyncio.Semaphore(args.concurrency)
    async with AsyncVisionClient(args.url or service_url(), api_key=args.api_key) as client:

        async def one(path: Path) -> Done:
            async with gate:
                return await ask(client, args.endpoint, path, args.model, args.out is not None)

        tasks = [asyncio.create_task(one(path)) for path in paths]
        try:
            for task in tasks:
                yield await task
        finally:
            for task in tasks:
                task.cancel()


def write_drawing(done: Done, target: Path) -> str | None:
    """Write the drawing; None, or why it could not be written."""
    try:
        written = cv2.imwrite(str(target), done.drawn)
    except cv2.error:
        written = False
    return None if written else f"could not write {target}"


def report_one(done: Done, args) -> None:
    """One image, as `python -m clients` has always answered: pretty JSON, or a drawing and a line."""
    if done.error:
        sys.exit(f"error: {done.error}")
    if args.out is None or args.json:
        print(json.dumps(done.answer, indent=2))
    if args.out is not None:
        problem = write_drawing(done, args.out)
        if problem:
            sys.exit(f"error: {problem}")
        print(f"{done.summary} -> {args.out}", file=sys.stderr if args.json else sys.stdout)


def report_line(done: Done, args) -> bool:
    """One image among several: a JSON line (and its drawing in the --out folder); whether it worked."""
    if done.error is None and args.out is not None:
        done.error = write_drawing(done, args.out / drawing_name(done.path) if args.several else args.out)
    record = {"image": str(done.path), **({"error": done.error} if done.error else done.answer)}
    tqdm.write(json.dumps(record), file=sys.stdout)
    return done.error is None


async def run(args, paths: list[Path]) -> int:
    """Ask about every image and report each; the number that failed."""
    failed = 0
    with tqdm(total=len(paths), unit="image", disable=None if args.several else True, file=sys.stderr) as bar:
        async for done in ask_all(args, paths):
            if args.several or args.jsonl:
                failed += not report_line(done, args)
            else:
                report_one(done, args)
            bar.update()
    return failed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m clients", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("endpoint", choices=["digit", "number", "keypoints", "faces"])
    parser.add_argument("images", type=Path, nargs="+", help="image files, or folders of them")
    parser.add_argument("--url", help=URL_HELP)
    parser.add_argument("--api-key", metavar="KEY", help=API_KEY_HELP)
    parser.add_argument("--model", default="cnn", choices=["cnn", "mlp"], help="digit model")
    parser.add_argument(
        "--out",
        "--show",
        type=Path,
        help="write the image with the answer drawn on it (.jpg, .png, ...; a folder for several images); "
        "for digit and number, with the 28x28 images the model saw beneath",
    )
    parser.add_argument("--json", action="store_true", help="with --out, also print the JSON answer")
    parser.add_argument("--jsonl", action="store_true", help="one JSON line per image (always so for several)")
    parser.add_argument(
        "--concurrency", type=int, default=CONCURRENCY, help=f"images in flight at once (default {CONCURRENCY})"
    )
    args = parser.parse_args(argv)
    try:
        if args.concurrency < 1:
            raise UsageError("--concurrency must be at least 1")
        paths = image_paths(args.images)
        args.several = len(paths) > 1 or any(p.is_dir() for p in args.images)
        if args.out is not None:
            check_out(args.out, paths, args.several)
    except UsageError as e:
        sys.exit(f"error: {e}")
    try:
        failed = asyncio.run(run(args, paths))
    except ServiceError as e:  # a bad --url, a missing or refused API key
        sys.exit(f"error: {e}")
    if failed:
        sys.exit(f"error: {failed} of {len(paths)} images failed")


if __name__ == "__main__":
    main()
