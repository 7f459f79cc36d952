"""Safe decoding of uploaded images: refuse what is not a sane image before it costs memory.

Order matters: the byte size is checked first, then Pillow reads only the header (format and
declared size) so that a tiny file that claims 30000x30000 pixels is refused before anything is
decoded. The pixels come from `cv2.imdecode`, the decoder that made the training crops
(`cv2.imread`), so serving sees the pixels training saw, and the image is decoded once: OpenCV
refuses a truncated PNG, WebP or BMP by itself, and a JPEG without its end-of-image marker is
refused here (OpenCV would return it half grey). Only what OpenCV cannot read goes to Pillow,
whose full decode raises on damage.

`decode_for_faces` may let libjpeg decode a large JPEG at 1/2, 1/4 or 1/8 scale (its DCT scaling:
several times faster than decoding every pixel) while the longer side stays at least
`FACE_DETAIL_SIDE` pixels, which keeps faces in a group photo at crop resolution.
"""

import io
import re
import warnings

import cv2
import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from service.settings import Settings
from vision.errors import InputError

FORMATS = ("PNG", "JPEG", "BMP", "WEBP")


class TooLarge(InputError):
    """The upload or the image it declares is over a limit (HTTP 413)."""


# A failed imdecode is answered with our own one-line error; OpenCV's log line would only repeat it.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

FACE_DETAIL_SIDE = 1280
REDUCED_READS = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
JPEG_END = b"\xff\xd9"


def decode(
    data: bytes, max_bytes: int = Settings.max_upload_bytes, max_pixel_count: int = Settings.max_pixels
) -> np.ndarray:
    """Upload bytes -> a BGR uint8 image (H, W, 3), or InputError / TooLarge in one line."""
    return _decode(data, header(data, max_bytes, max_pixel_count), 1)


def decode_for_faces(
    data: bytes, max_bytes: int = Settings.max_upload_bytes, max_pixel_count: int = Settings.max_pixels
) -> tuple[np.ndarray, int, tuple[int, int]]:
    """Upload bytes -> (BGR image, reduction factor f, the full (width, height)): image pixel p is
    full-resolution pixel (p + 0.5) * f - 0.5. Large JPEGs come back reduced (see the module).
    Both decoders turn the photo upright by its EXIF orientation, so the size is the upright one."""
    image = header(data, max_bytes, max_pixel_count)
    factor = 1
    if image.format == "JPEG":
        while factor < 8 and max(image.size) // (factor * 2) >= FACE_DETAIL_SIDE:
            factor *= 2
    return _decode(data, image, factor), factor, upright_size(image)


def upright_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) as the photo is shown: EXIF orientations 5 to 8 turn it by 90 degrees
    (a phone held upright stores its photos sideways with orientation 6)."""
    width, height = image.size
    return (height, width) if image.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8) else (width, height)


def check_square(width: int, height: int, max_pixel_count: int = Settings.max_pixels) -> None:
    """/keypoints pads a crop to the square around its center (`FaceCrop.whole`), and cutting it
    allocates about that square: hold the square, not only the upload, to the pixel limit (a
    1x20000 strip would otherwise cost a 30000x30000 buffer)."""
    side = max(width, height)
    if side * side > max_pixel_count:
        raise TooLarge(
            f"a crop is padded to its square: {width}x{height} becomes {side}x{side} = {side * side} pixels, "
            f"over the {max_pixel_count}-pixel limit"
        )


def header(data: bytes, max_bytes: int, max_pixel_count: int) -> Image.Image:
    """The upload's Pillow image, header read only, after the byte-size and pixel-count limits."""
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
            f"the image declares {width}x{height} = {width * height} pixels, over the {max_pixel_count}-pixel limit"
        )
    return image


def _decode(data: bytes, image: Image.Image, factor: int) -> np.ndarray:
    if image.format == "JPEG" and JPEG_END not in data[-64:]:  # padding may follow the marker
        raise InputError("truncated or corrupt JPEG image (no end-of-image marker)")
    flags = REDUCED_READS[factor] if factor > 1 else cv2.IMREAD_COLOR
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if bgr is not None and bgr.size:
        return bgr
    try:  # a variant OpenCV cannot read (or a damaged file): Pillow's full decode decides
        image.load()
    except Exception as e:
        raise InputError(f"truncated or corrupt {image.format} image ({e})") from None
    rgb = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    if factor > 1:
        rgb = cv2.resize(rgb, (rgb.shape[1] // factor, rgb.shape[0] // factor), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
