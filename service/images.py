"""Safe decoding of uploaded images: refuse what is not a sane image before it costs memory.

Order matters: the byte size is checked first, then Pillow reads only the header (format and
declared size) so that a tiny file that claims 30000x30000 pixels is refused before anything is
decoded. The pixels come from `cv2.imdecode`, the decoder that made the training crops
(`cv2.imread`), so serving sees the pixels training saw, and the image is decoded once: OpenCV
refuses a truncated PNG, WebP or BMP by itself, and a JPEG without its end-of-image marker is
refused here (OpenCV would return it half grey). Only what OpenCV cannot read goes to Pillow,
whose full decode raises on damage.

Phone photos: HEIC/HEIF (iPhones) is read by pillow-heif (libheif), AVIF by Pillow itself
(libavif); both go straight to Pillow, since OpenCV cannot read HEIF and reads AVIF without its
rotation. Their declared size comes from the container's header as for the other formats;
libheif will not decode more pixels than that, but libavif decodes the AV1 frame at the frame's
own size (up to its 16384x16384 limit) whatever the header claims (docs/service.md). A
HEIF or AVIF cut short is refused before decoding, in one message for both: libavif cannot read
the header of an AVIF cut short (it would be "not an image"), and libheif reads a HEIC whose
EXIF, stored after the pixels, is cut without a word.

`decode_reduced` may let libjpeg decode a large JPEG at 1/2, 1/4 or 1/8 scale (its DCT scaling:
several times faster than decoding every pixel) while the longer side stays at least the pixels
the endpoint works at: `FACE_DETAIL_SIDE` for faces, which keeps faces in a group photo at crop
resolution, and the digits' working sides (`vision.digits.WORK_SIDE`, `vision.number_page.NUMBER_WORK_SIDE`), which a
12-megapixel phone photo of a digit would otherwise be decoded in full only to be shrunk to.
"""

import io
import re
import warnings

import cv2
import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from service.settings import Settings
from vision.errors import InputError
from vision.photos import upright_bgr  # also registers the HEIF opener with Pillow

# The formats taken: Pillow's name -> the name people know. Pillow tries them in this order, AVIF
# before HEIF: both claim the generic "mif1" brand, and libheif here has no AV1 decoder.
FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "BMP": "BMP", "WEBP": "WebP", "AVIF": "AVIF", "HEIF": "HEIC/HEIF"}
*_others, _last = FORMATS.values()
NOT_AN_IMAGE = f"not an image: expected {', '.join(_others)} or {_last}"
# What OpenCV must not decode: it cannot read HEIF, and it reads AVIF without its rotation (irot).
PILLOW_ONLY = ("AVIF", "HEIF")
# ISO media files (HEIF, AVIF): their major brand, bytes 8-12 after "ftyp", names the format.
ISO_BRANDS = {b"avif": "AVIF", b"avis": "AVIF", b"heic": "HEIF", b"heix": "HEIF", b"mif1": "HEIF", b"msf1": "HEIF"}
ISO_BOXES_BEFORE_PIXELS = 64  # ftyp, meta and mdat in practice; a bound on the walk, not a rule


class TooLarge(InputError):
    """The upload or the image it declares is over a limit."""

    status = 413


# A failed imdecode is answered with our own one-line error; OpenCV's log line would only repeat it.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

FACE_DETAIL_SIDE = 1280
# Decode flags by reduction factor, in colour and in gray (libjpeg's own gray: no colour conversion).
READS = {
    False: {
        1: cv2.IMREAD_COLOR,
        2: cv2.IMREAD_REDUCED_COLOR_2,
        4: cv2.IMREAD_REDUCED_COLOR_4,
        8: cv2.IMREAD_REDUCED_COLOR_8,
    },
    True: {
        1: cv2.IMREAD_GRAYSCALE,
        2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
        4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
        8: cv2.IMREAD_REDUCED_GRAYSCALE_8,
    },
}
JPEG_END = b"\xff\xd9"


def decode(
    data: bytes, max_bytes: int = Settings.max_upload_bytes, max_pixel_count: int = Settings.max_pixels
) -> np.ndarray:
    """Upload bytes -> a BGR uint8 image (H, W, 3), or InputError / TooLarge in one line."""
    return _decode(data, header(data, max_bytes, max_pixel_count), 1)


def decode_reduced(
    data: bytes,
    keep_side: int,
    max_bytes: int = Settings.max_upload_bytes,
    max_pixel_count: int = Settings.max_pixels,
    gray: bool = False,
) -> tuple[np.ndarray, int, tuple[int, int]]:
    """Upload bytes -> (BGR image, reduction factor f, the full (width, height)): image pixel p is
    full-resolution pixel (p + 0.5) * f - 0.5. A large JPEG comes back reduced, its longer side
    still at least `keep_side` (see the module). Both decoders turn the photo upright by its EXIF
    orientation, so the size is the upright one. `gray`: a gray image instead, all that cutting
    given boxes needs (a third faster for a JPEG)."""
    image = header(data, max_bytes, max_pixel_count)
    factor = 1
    if image.format == "JPEG":
        while factor < 8 and max(image.size) // (factor * 2) >= keep_side:
            factor *= 2
    return _decode(data, image, factor, gray), factor, upright_size(image)


def upright_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) as the photo is shown: EXIF orientations 5 to 8 turn it by 90 degrees
    (a phone held upright stores its photos sideways with orientation 6). A HEIF's size is
    already upright (libheif turns it and pillow-heif resets the tag); Pillow gives an AVIF's
    rotation as the tag."""
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
    iso_format = ISO_BRANDS.get(data[8:12]) if data[4:8] == b"ftyp" else None
    if iso_format and _cut_short(data):
        raise InputError(f"truncated or corrupt {iso_format} image (a box runs past the end of the file)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit below
            image = Image.open(io.BytesIO(data), formats=tuple(FORMATS))  # reads the header only
            width, height = image.size
    except Image.DecompressionBombError as e:  # Pillow's hard stop, far above any sane photo
        declared = re.search(r"\((\d+) pixels\)", str(e))
        count = declared.group(1) if declared else "too many"
        raise TooLarge(f"the image declares {count} pixels, over the {max_pixel_count}-pixel limit") from None
    except UnidentifiedImageError:
        raise InputError(NOT_AN_IMAGE) from None
    except Exception as e:  # a header so broken that a plugin raised something else
        raise InputError(f"unreadable image header ({type(e).__name__})") from None
    if width <= 0 or height <= 0:
        raise InputError(f"the image declares an empty size {width}x{height}")
    if width * height > max_pixel_count:
        raise TooLarge(
            f"the image declares {width}x{height} = {width * height} pixels, over the {max_pixel_count}-pixel limit"
        )
    return image


def _cut_short(data: bytes) -> bool:
    """Whether an ISO media file (HEIF, AVIF) ends inside one of its top-level boxes, up to the
    one holding the pixels (mdat). The boxes lie end to end, each led by its 4-byte size
    (1: an 8-byte size follows the type; 0: the box runs to the end of the file)."""
    at = 0
    for _ in range(ISO_BOXES_BEFORE_PIXELS):
        if at + 8 > len(data):
            return False
        size, kind = int.from_bytes(data[at : at + 4], "big"), data[at + 4 : at + 8]
        if size == 1 and at + 16 <= len(data):
            size = int.from_bytes(data[at + 8 : at + 16], "big")
        if size == 0:
            return False  # the last box, to the end of the file
        if size < 8 or at + size > len(data):
            return True
        if kind == b"mdat":
            return False  # the pixels are whole; what follows them is not ours to judge
        at += size
    return False


def _decode(data: bytes, image: Image.Image, factor: int, gray: bool = False) -> np.ndarray:
    if image.format == "JPEG" and JPEG_END not in data[-64:]:  # padding may follow the marker
        raise InputError("truncated or corrupt JPEG image (no end-of-image marker)")
    if image.format not in PILLOW_ONLY:
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), READS[gray][factor])
        if decoded is not None and decoded.size:
            return decoded
    try:  # a variant OpenCV cannot read (or a damaged file): Pillow's full decode decides
        decoded = upright_bgr(image)
    except Exception as e:
        raise InputError(f"truncated or corrupt {image.format} image ({' '.join(str(e).split())})") from None
    if factor > 1:
        decoded = cv2.resize(
            decoded, (decoded.shape[1] // factor, decoded.shape[0] // factor), interpolation=cv2.INTER_AREA
        )
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2GRAY) if gray else decoded
