"""Photos as phones and browsers store them: every format Pillow reads, HEIC/HEIF through
pillow-heif (libheif) and AVIF through Pillow's own plugin (libavif), turned upright by the EXIF
orientation. One decoding for the service's uploads (`service.images`) and the clients' drawings
(`clients.api.read_image`), so a drawing is in the frame its answer is in.
"""

import cv2
import numpy as np
import pillow_heif
from PIL import Image, ImageOps

# The primary image only: no thumbnails, depth maps or other auxiliary images are read.
pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)


def upright_bgr(image: Image.Image) -> np.ndarray:
    """Pillow's full decode of an opened image (it raises on damage), turned upright by its EXIF
    orientation, as BGR uint8. libheif hands HEIF over upright with the orientation tag reset to
    1, so it is not turned twice; Pillow's AVIF keeps the rotation as the tag, turned here."""
    image.load()
    rgb = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
