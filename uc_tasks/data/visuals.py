"""Images handed to a model: the stable id each carries, and the paper's blank image for text questions."""

from __future__ import annotations

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
