"""vision.photos: phone formats open in Pillow and come out upright, as the service and the
clients both decode them."""

import io

import pytest
from phone_photos import PHONE_PHOTOS, UPRIGHT_SIZE, phone_photo
from PIL import Image

from vision.photos import upright_bgr


@pytest.mark.parametrize("name", sorted(PHONE_PHOTOS))
def test_a_phone_photo_opens_and_comes_out_upright(name):
    fmt, _sideways = PHONE_PHOTOS[name]
    with Image.open(io.BytesIO(phone_photo(name))) as image:
        assert image.format == fmt
        bgr = upright_bgr(image)
    width, height = UPRIGHT_SIZE
    assert bgr.shape == (height, width, 3) and bgr.dtype.name == "uint8"
