"""The phone-format fixtures in tests/fixtures/phone/: docs/examples/face.jpg (Grace Hopper, public
domain, 512x600) as HEIC and AVIF, upright and as a phone stores a photo taken upright: turned
90 degrees anticlockwise, with EXIF orientation 6 ("turn clockwise to show"). The encoders
write that orientation as the container's rotation (irot) too, as iPhones do.

The files are committed (encoders differ between versions); `python tests/phone_photos.py`
writes them again.
"""

import io
import struct

import pillow_heif
from paths import FIXTURES, ROOT
from PIL import ExifTags, Image

SOURCE = ROOT / "docs" / "examples" / "face.jpg"
FOLDER = FIXTURES / "phone"
UPRIGHT_SIZE = (512, 600)
PHONE_PHOTOS = {  # name -> (Pillow format, stored sideways)
    "face.heic": ("HEIF", False),
    "face.avif": ("AVIF", False),
    "face_sideways.heic": ("HEIF", True),
    "face_sideways.avif": ("AVIF", True),
}
QUALITY = {"HEIF": 30, "AVIF": 40}  # 10-15 KB a file; YuNet finds the face as in the JPEG


def phone_photo(name: str) -> bytes:
    return (FOLDER / name).read_bytes()


def declaring(data: bytes, width: int, height: int) -> bytes:
    """The file with its header's image size (the ISO media 'ispe' box) replaced; the coded
    pixels stay as they were."""
    at = data.index(b"ispe") + 8  # after the box type and its version and flags
    return data[:at] + struct.pack(">II", width, height) + data[at + 8 :]


def encoded(fmt: str, sideways: bool) -> bytes:
    upright = Image.open(SOURCE).convert("RGB")
    if not sideways:
        out = io.BytesIO()
        upright.save(out, fmt, quality=QUALITY[fmt])
        return out.getvalue()
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    out = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(out, fmt, quality=QUALITY[fmt], exif=exif.tobytes())
    return out.getvalue()


def main() -> None:
    pillow_heif.register_heif_opener()
    FOLDER.mkdir(parents=True, exist_ok=True)
    for name, (fmt, sideways) in PHONE_PHOTOS.items():
        data = encoded(fmt, sideways)
        (FOLDER / name).write_bytes(data)
        print(f"{FOLDER / name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
