"""The example inputs every benchmark posts: shipped in docs/examples, framed as a webcam would."""

import io
from pathlib import Path

from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
DIGIT = EXAMPLES / "digit.png"
PHOTO = EXAMPLES / "face.jpg"
NUMBER = EXAMPLES / "number_on_paper.jpg"
PHONE_WIDTH = 4032  # a 12-megapixel phone photo's longer side


class BenchError(RuntimeError):
    """A one-line reason to stop."""


def sample(path: Path) -> tuple[bytes, str]:
    """(the file's bytes, "WxH") of an example image shipped in docs/examples."""
    try:
        with Image.open(path) as image:
            return path.read_bytes(), f"{image.width}x{image.height}"
    except OSError as e:
        raise BenchError(f"cannot read the example image {path} ({e.__class__.__name__})") from None


def framed(path: Path, width: int, height: int) -> bytes:
    """The example photo scaled to the frame's height and centred on a grey frame, as a JPEG."""
    with Image.open(path) as photo:
        photo = photo.convert("RGB")
        scaled = photo.resize((round(photo.width * height / photo.height), height), Image.LANCZOS)
    frame = Image.new("RGB", (width, height), (120, 120, 120))
    frame.paste(scaled, ((width - scaled.width) // 2, 0))
    return _jpeg(frame)


def enlarged(path: Path, width: int) -> bytes:
    """The example photo enlarged to `width` pixels wide (a phone photo's size), as a JPEG."""
    with Image.open(path) as photo:
        photo = photo.convert("RGB")
        return _jpeg(photo.resize((width, round(photo.height * width / photo.width)), Image.LANCZOS))


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()
