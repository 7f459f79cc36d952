"""Safe decoding of uploaded images: refuse what is not a sane image before it costs memory.

Order matters: the byte size is checked first, then Pillow reads only the header (format and
declared size) so that a tiny file that claims 30000x30000 pixels is refused before anything is
decoded; then Pillow decodes fully, which is what finds truncated files (OpenCV silently returns
a half-gray JPEG); the pixels themselves come from `cv2.imdecode(IMREAD_COLOR)`, the decoder that
made the training crops (`cv2.imread`), so serving sees the same pixels training saw.
"""

import io
import re
import warnings

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from service.settings import Settings
from vision.errors import InputError

FORMATS = ("PNG", "JPEG", "BMP", "WEBP")


class TooLarge(InputError):
    """The upload or the image it declares is over a limit (HTTP 413)."""


def decode(
    data: bytes, max_bytes: int = Settings.max_upload_bytes, max_pixel_count: int = Settings.max_pixels
) -> np.ndarray:
    """Upload bytes -> a BGR uint8 image (H, W, 3), or InputError / TooLarge in one line."""
    if not data:
        raise InputError("the uploaded file is empty")
    if len(data) > max_bytes:
        raise TooLarge(f"the upload is {len(data)} bytes, over the {max_bytes}-byte limit")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit below
            image = Image.open(io.BytesIO(data), formats=FORMATS)  # reads the header only
            width, height = image.size
    except Image.DecompressionBombError as e:  # Pillow's hard stop, far above any sane photo
        declared = re.search(r"\((\d+) pixels\)", str(e))
        count = declared.group(1) if declared else "too many"
        raise TooLarge(f"the image declares {count} pixels, over the {max_pixel_count}-pixel limit") from None
    except UnidentifiedImageError:
        raise InputError("not an image: expected PNG, JPEG, BMP or WebP") from None
    except Exception as e:  # a header so broken that a plugin raised something else
        raise InputError(f"unreadable image header ({type(e).__name__})") from None
    if width <= 0 or height <= 0:
        raise InputError(f"the image declares an empty size {width}x{height}")
    if width * height > max_pixel_count:
        raise TooLarge(
            f"the image declares {width}x{height} = {width * height} pixels, "
            f"over the {max_pixel_count}-pixel limit"
        )
    try:
        image.load()  # full decode: raises on truncated or corrupt data
    except Exception as e:
        raise InputError(f"truncated or corrupt {image.format} image ({e})") from None

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:  # a variant OpenCV cannot read: use Pillow's pixels
        rgb = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    return bgr
