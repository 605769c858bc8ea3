"""Images handed to a model: the stable id each carries, and the paper's blank image for text questions."""

from __future__ import annotations

import base64
import io
from functools import lru_cache

from PIL import Image

IMAGE_ID_KEY = "uc_image_id"
"""``image.info`` key holding a stable id of the image, so that a backend can encode each image once."""
BLANK_SIZE = (1000, 1000)


@lru_cache(maxsize=1)
def blank_image() -> Image.Image:
    """The blank white 1000x1000 RGB image the paper attaches to text questions."""
    image = Image.new("RGB", BLANK_SIZE, (255, 255, 255))
    image.info[IMAGE_ID_KEY] = f"blank:{BLANK_SIZE[0]}x{BLANK_SIZE[1]}"
    return image


def data_url(image: Image.Image, image_format: str = "PNG", quality: int | None = None) -> str:
    """``image`` as a base64 data URL in ``image_format`` (JPEG / WEBP at ``quality``); converted to RGB where the
    format or the mode needs it."""
    img = image.convert("RGB") if image_format == "JPEG" or image.mode not in ("RGB", "RGBA", "L") else image
    buf = io.BytesIO()
    img.save(buf, format=image_format, **({"quality": quality} if quality and image_format in ("JPEG", "WEBP")
                                          else {}))
    return f"data:image/{image_format.lower()};base64,{base64.b64encode(buf.getvalue()).decode()}"
