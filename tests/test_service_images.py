"""Unit tests for the service's input guards: image decoding limits, array checks, the body limit."""

import asyncio
import io
import struct

import cv2
import numpy as np
import pytest
from phone_photos import PHONE_PHOTOS, SOURCE, UPRIGHT_SIZE, declaring, phone_photo
from photos import png_header
from PIL import ExifTags, Image

from service.arrays import batch_of
from service.images import FACE_DETAIL_SIDE, FORMATS, TooLarge, decode, decode_reduced, header, upright_size
from service.limits import MULTIPART_SLACK, BodyLimit
from vision.errors import InputError


def encoded(image: np.ndarray, fmt: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format=fmt)
    return out.getvalue()


@pytest.fixture
def rgb() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "WEBP"])
def test_lossless_formats_decode_to_the_same_bgr_pixels(rgb, fmt):
    data = encoded(rgb, fmt) if fmt != "WEBP" else _lossless_webp(rgb)
    bgr = decode(data)
    assert bgr.shape == (37, 53, 3) and bgr.dtype == np.uint8
    np.testing.assert_array_equal(bgr[:, :, ::-1], rgb)


def _lossless_webp(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="WEBP", lossless=True)
    return out.getvalue()


def test_jpeg_decodes_like_cv2_imread_did_for_training(rgb, tmp_path):
    data = encoded(rgb, "JPEG")
    (tmp_path / "x.jpg").write_bytes(data)
    np.testing.assert_array_equal(decode(data), cv2.imread(str(tmp_path / "x.jpg"), cv2.IMREAD_COLOR))


def test_gray_and_rgba_become_bgr(rgb):
    assert decode(encoded(rgb[:, :, 0], "PNG")).shape == (37, 53, 3)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    assert decode(encoded(rgba, "PNG")).shape == (37, 53, 3)


def test_empty_file_is_refused():
    with pytest.raises(InputError, match="empty"):
        decode(b"")


@pytest.mark.parametrize("data", [b"hello, world", b"%PDF-1.7\n" + b"\0" * 100, b"\x89PNG\r\n\x1a\n"])
def test_non_images_are_refused(data):
    with pytest.raises(InputError) as caught:
        decode(data)
    assert not isinstance(caught.value, TooLarge)


def test_gif_is_not_an_accepted_format_and_the_error_lists_those_that_are(rgb):
    with pytest.raises(InputError) as caught:
        decode(encoded(rgb, "GIF"))
    assert str(caught.value) == "not an image: expected PNG, JPEG, BMP, WebP, AVIF or HEIC/HEIF"
    assert all(name in str(caught.value) for name in FORMATS.values())


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_images_are_refused(rgb, fmt):
    big = np.tile(rgb, (8, 8, 1))
    data = encoded(big, fmt)
    with pytest.raises(InputError, match="truncated or corrupt"):
        decode(data[: len(data) // 2])


def test_over_the_byte_limit_is_too_large(rgb):
    data = encoded(rgb, "PNG")
    with pytest.raises(TooLarge, match="byte limit"):
        decode(data, max_bytes=len(data) - 1)
    assert decode(data, max_bytes=len(data)).shape == (37, 53, 3)


@pytest.mark.parametrize("size", [(30000, 30000), (7000, 6000)])
def test_a_huge_declared_size_is_refused_before_decoding(size):
    data = png_header(*size)
    assert len(data) < 200
    with pytest.raises(
        TooLarge, match=f"^the image declares .*{size[0] * size[1]} pixels, over the 40000000-pixel limit$"
    ):
        decode(data, max_pixel_count=40_000_000)


def test_a_huge_bmp_header_is_refused_before_decoding():
    # BITMAPFILEHEADER + BITMAPINFOHEADER declaring 20000 x 20000 x 24 bits, and no pixel data.
    header = struct.pack("<2sIHHI", b"BM", 54, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, 20000, 20000, 1, 24, 0, 0, 2835, 2835, 0, 0)
    with pytest.raises(TooLarge):
        decode(header + info, max_pixel_count=40_000_000)


def test_the_pixel_limit_is_inclusive(rgb):
    data = encoded(rgb, "PNG")
    assert decode(data, max_pixel_count=37 * 53).shape == (37, 53, 3)
    with pytest.raises(TooLarge):
        decode(data, max_pixel_count=37 * 53 - 1)


# --- array checks -------------------------------------------------------------------------------

check = batch_of(1, 28, 28)


def test_a_good_batch_passes_as_float32():
    out = check(np.zeros((3, 1, 28, 28)).tolist())
    assert out.shape == (3, 1, 28, 28) and out.dtype == np.float32


@pytest.mark.parametrize(
    "value, reason",
    [
        (np.zeros((2, 784)).tolist(), "shape"),  # would reshape silently under bentoml's Shape
        (np.zeros((1, 28, 28)).tolist(), "shape"),
        (np.zeros((1, 1, 27, 28)).tolist(), "shape"),
        ([], "shape"),
        (np.zeros((0, 1, 28, 28), np.float32), "empty"),
        ([[["a"] * 28] * 28], "numbers"),
        (np.zeros((1, 1, 28, 28), bool).tolist(), "numbers"),
        ([[[[0.0] * 28] * 27 + [[0.0] * 3]]], "rectangular|numbers"),
        (np.full((1, 1, 28, 28), np.nan).tolist(), "NaN"),
        (np.full((1, 1, 28, 28), np.inf).tolist(), "NaN"),
        (np.full((1, 1, 28, 28), 255.0).tolist(), r"\[0, 1\]"),
        (np.zeros((1, 1, 28, 28), np.float64), "float32"),
    ],
)
def test_bad_batches_are_refused(value, reason):
    with pytest.raises(ValueError, match=reason):
        check(value)


# --- body limit ---------------------------------------------------------------------------------


def run_limited(body_chunks, headers, max_bytes=1000):
    """Send a request through BodyLimit to an app that echoes the body length."""
    sent, seen = [], {}

    async def app(scope, receive, send):
        message = await receive()
        seen["body"] = message["body"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def main():
        messages = [
            {"type": "http.request", "body": c, "more_body": i < len(body_chunks) - 1}
            for i, c in enumerate(body_chunks)
        ]

        async def receive():
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "headers": headers}
        await BodyLimit(app, max_bytes=max_bytes)(scope, receive, send)

    asyncio.run(main())
    return sent[0]["status"], seen.get("body")


def test_body_limit_refuses_a_declared_length_over_the_limit_without_reading():
    status, seen = run_limited([b"x"], [(b"content-length", str(1000 + MULTIPART_SLACK + 1).encode())])
    assert status == 413 and seen is None


def test_body_limit_refuses_a_chunked_body_that_grows_over_the_limit():
    chunk = b"x" * 20_000
    status, seen = run_limited([chunk] * 10, [])
    assert status == 413 and seen is None


def test_body_limit_passes_a_small_chunked_body_on_whole():
    status, seen = run_limited([b"ab", b"cd", b"ef"], [])
    assert status == 200 and seen == b"abcdef"


def test_body_limit_refuses_a_bad_content_length():
    status, _ = run_limited([b"x"], [(b"content-length", b"lots")])
    assert status == 400


def test_a_large_jpeg_is_decoded_reduced_for_faces_and_maps_back(rgb):
    big = cv2.resize(rgb, (3000, 2000), interpolation=cv2.INTER_CUBIC)
    data = encoded(big, "JPEG")
    picture, factor, size = decode_reduced(data, FACE_DETAIL_SIDE)
    assert size == (3000, 2000) and factor == 2 and picture.shape == (1000, 1500, 3)
    assert max(picture.shape) >= FACE_DETAIL_SIDE
    full = cv2.resize(decode(data), (1500, 1000), interpolation=cv2.INTER_AREA)
    assert np.abs(full.astype(int) - picture).mean() < 3  # the same picture, at half size
    small, factor, _ = decode_reduced(encoded(rgb, "JPEG"), FACE_DETAIL_SIDE)
    assert factor == 1 and small.shape == (37, 53, 3)
    png, factor, _ = decode_reduced(encoded(big, "PNG"), FACE_DETAIL_SIDE)
    assert factor == 1 and png.shape == (2000, 3000, 3)  # only JPEG decodes reduced
    gray, factor, _ = decode_reduced(data, FACE_DETAIL_SIDE, gray=True)
    assert factor == 2 and gray.shape == (1000, 1500)
    assert np.abs(gray.astype(int) - cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY)).mean() < 1


# EXIF orientation -> how the stored pixels turn to show the photo upright (the tag's definition).
UPRIGHT = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirrored left-right
    3: lambda a: cv2.rotate(a, cv2.ROTATE_180),
    4: lambda a: a[::-1],  # mirrored top-bottom
    5: lambda a: a.transpose(1, 0, 2),  # mirrored along the main diagonal
    6: lambda a: cv2.rotate(a, cv2.ROTATE_90_CLOCKWISE),
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],  # mirrored along the other diagonal
    8: lambda a: cv2.rotate(a, cv2.ROTATE_90_COUNTERCLOCKWISE),
}


@pytest.mark.parametrize("orientation", sorted(UPRIGHT))
def test_a_phone_photo_stored_sideways_is_answered_upright(rgb, orientation):
    """Phones store an upright photo sideways with EXIF orientation 6; both decoders turn it, so
    the pixels are the stored ones turned as the tag says (the size alone cannot tell 3 from 1),
    and the size /faces reports is the turned one, as the boxes are."""
    stored_bgr = cv2.resize(rgb, (3000, 2000))[:, :, ::-1]
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    out = io.BytesIO()
    Image.fromarray(stored_bgr[:, :, ::-1]).save(out, "JPEG", exif=exif.tobytes())
    picture, factor, size = decode_reduced(out.getvalue(), FACE_DETAIL_SIDE)
    assert size == (picture.shape[1] * factor, picture.shape[0] * factor)
    assert size == ((2000, 3000) if orientation >= 5 else (3000, 2000))
    differences = {}
    for candidate, turn in UPRIGHT.items():
        turned = np.ascontiguousarray(turn(stored_bgr))
        if (turned.shape[1], turned.shape[0]) == size:  # those of the same shape
            reduced = cv2.resize(turned, (picture.shape[1], picture.shape[0]), interpolation=cv2.INTER_AREA)
            differences[candidate] = np.abs(reduced.astype(int) - picture).mean()
    assert min(differences, key=differences.get) == orientation and differences[orientation] < 3, differences
    gray, _, _ = decode_reduced(out.getvalue(), FACE_DETAIL_SIDE, gray=True)  # for given boxes: turned alike, in gray
    assert gray.shape == picture.shape[:2]
    assert np.abs(gray.astype(int) - cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY)).mean() < 1


# --- phone formats: HEIC/HEIF and AVIF (fixtures and how they were made: tests/phone_photos.py) ---


@pytest.mark.parametrize("name", sorted(PHONE_PHOTOS))
def test_a_phone_photo_decodes_upright_like_the_jpeg_it_was_made_from(name):
    """The sideways files are turned once: not at all would swap width and height, twice would
    leave the face upside down, far from the JPEG's pixels."""
    picture, factor, size = decode_reduced(phone_photo(name), FACE_DETAIL_SIDE)
    assert factor == 1 and size == UPRIGHT_SIZE and picture.shape == (600, 512, 3)
    assert np.abs(picture.astype(int) - cv2.imread(str(SOURCE))).mean() < 8  # lossy encoding, nothing more
    gray, _, _ = decode_reduced(phone_photo(name), FACE_DETAIL_SIDE, gray=True)  # Pillow's decode, then gray
    assert np.array_equal(gray, cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY))


@pytest.mark.parametrize("name", ["face_sideways.heic", "face_sideways.avif"])
def test_the_sideways_fixtures_are_stored_sideways(name):
    """What the test above relies on: the pixels lie sideways, with the rotation in the container
    (irot) and EXIF orientation 6, as an iPhone writes them. libheif turns a HEIF as it opens it and
    pillow-heif then resets the tag; Pillow gives an AVIF as stored, with the rotation as the tag."""
    data = phone_photo(name)
    image = header(data, len(data), 10**7)
    assert b"irot" in data
    if image.format == "HEIF":
        assert image.size == UPRIGHT_SIZE and image.info["original_orientation"] == 6
        assert image.getexif().get(ExifTags.Base.Orientation) == 1
    else:
        assert image.size == (600, 512) and image.getexif().get(ExifTags.Base.Orientation) == 6
    assert upright_size(image) == UPRIGHT_SIZE


@pytest.mark.parametrize("name", ["face.heic", "face.avif"])
def test_a_phone_photo_over_the_pixel_limit_is_refused_from_its_header(name):
    data = phone_photo(name)
    assert decode(data, max_pixel_count=512 * 600).shape == (600, 512, 3)
    with pytest.raises(TooLarge, match="declares 512x600 = 307200 pixels, over the 307199-pixel limit"):
        header(data, len(data), 512 * 600 - 1)
    # A header claiming more than the file holds: refused before decoding, which would not give that size.
    with pytest.raises(TooLarge, match="^the image declares 7000x6000 = 42000000 pixels, over the 40000000-pixel"):
        decode(declaring(data, 7000, 6000), max_pixel_count=40_000_000)


def test_a_heic_holding_more_pixels_than_its_header_declares_is_refused_in_one_line():
    """libheif holds the decode to the declared size, so the header's pixel check cannot be
    dodged by understating; its error ends in a newline, the answer must not."""
    with pytest.raises(InputError, match="^truncated or corrupt HEIF image .*Security limit exceeded") as caught:
        decode(declaring(phone_photo("face.heic"), 64, 64))
    assert "\n" not in str(caught.value) and not isinstance(caught.value, TooLarge)


@pytest.mark.parametrize("name", ["face.heic", "face_sideways.heic", "face.avif"])
@pytest.mark.parametrize("keep", [0.5, 0.9, -1], ids=["half", "90%", "all-but-one-byte"])
def test_a_truncated_phone_photo_is_refused_in_one_line(name, keep):
    """Without the check of the file's boxes, libavif cannot read the header of an AVIF cut short
    ("not an image"), and libheif reads the sideways HEIC cut inside its EXIF (stored after the
    pixels) without a word."""
    data = phone_photo(name)
    cut = data[:-1] if keep == -1 else data[: int(len(data) * keep)]
    fmt = "HEIF" if name.endswith(".heic") else "AVIF"
    with pytest.raises(InputError, match=f"^truncated or corrupt {fmt} image") as caught:
        decode(cut)
    assert "\n" not in str(caught.value) and not isinstance(caught.value, TooLarge)


@pytest.mark.parametrize("name", ["face.heic", "face.avif"])
def test_bytes_after_a_phone_photo_s_pixels_do_not_make_it_truncated(name):
    assert decode(phone_photo(name) + b"\0" * 40).shape == (600, 512, 3)


def test_a_damaged_avif_is_refused_in_one_line():
    data = bytearray(phone_photo("face.avif"))
    middle = len(data) // 2
    data[middle : middle + 50] = bytes(b ^ 0xFF for b in data[middle : middle + 50])
    with pytest.raises(InputError, match="^truncated or corrupt AVIF image") as caught:
        decode(bytes(data))
    assert "\n" not in str(caught.value)
