"""The image as the model sees it, differentiably: pixels in [0, 1] at the processor's size, then the processor's
rescale, normalisation and (Qwen2-VL) patchify in torch, so that gradients reach the pixels.

The resize comes first and is deterministic (the processor's own target size and resampling filter, in PIL, on
the 8-bit image): its output ``u0`` (uint8, H x W x 3) is the clean image the attack starts from and is saved.
A PNG of ``u0`` (or of a perturbed ``u``) fed to the processor again is not resized (it already has the target
size), so the model reads exactly the pixels the attack chose (``tests/test_attack.py`` checks this).

The budget lives on the 8-bit grid: an L-infinity budget ``epsilon`` in [0, 1] allows ``floor(255 epsilon)``
grey levels (``budget_levels``; 0.01 -> 2 levels = 0.00784), so a saved PNG keeps ``|u - u0|_inf / 255 <=
epsilon`` exactly, after quantisation.

Supported: Qwen2-VL-style image processors (``patch_size``, ``merge_size``, ``temporal_patch_size``, output
``pixel_values`` + ``image_grid_thw``: Qwen2-VL, Qwen2.5-VL). Any other processor is refused in one line.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

LEVELS = 255


class UnsupportedProcessor(ValueError):
    """An image processor whose preprocessing is not reproduced here."""


def budget_levels(epsilon: float) -> int:
    """Grey levels an L-infinity budget ``epsilon`` (pixel space [0, 1]) allows on the 8-bit grid."""
    return int(math.floor(epsilon * LEVELS + 1e-9))


def project(x: Tensor, x0: Tensor, levels: int) -> Tensor:
    """``x`` clipped to the ``levels / 255`` ball around ``x0`` and to [0, 1]."""
    radius = levels / LEVELS
    return torch.clamp(torch.minimum(torch.maximum(x, x0 - radius), x0 + radius), 0.0, 1.0)


def quantise(x: Tensor, u0: Tensor, levels: int) -> Tensor:
    """``x`` (float, [0, 1]) rounded to the 8-bit grid and clipped to ``u0 +- levels`` and [0, 255]: uint8."""
    u = torch.round(x.detach().float() * LEVELS)
    low, high = u0.float() - levels, u0.float() + levels
    return torch.clamp(torch.minimum(torch.maximum(u, low), high), 0, LEVELS).to(torch.uint8)


def to_unit(u: np.ndarray | Tensor) -> Tensor:
    """uint8 H x W x 3 -> float32 3 x H x W in [0, 1]."""
    t = torch.from_numpy(np.array(u, dtype=np.uint8)) if not isinstance(u, Tensor) else u
    return t.permute(2, 0, 1).float() / LEVELS


def to_uint8(x: Tensor) -> np.ndarray:
    """uint8 3 x H x W (or float on the grid) -> uint8 H x W x 3 numpy."""
    return x.detach().cpu().permute(1, 2, 0).to(torch.uint8).numpy()


class Qwen2VLPixels:
    """Qwen2-VL's image preprocessing: smart resize (PIL), rescale, normalise, patchify into ``pixel_values``
    (patches of all images one after another) and ``image_grid_thw``."""

    def __init__(self, image_processor: Any) -> None:
        ip = image_processor
        size = getattr(ip, "size", None) or {}
        get = size.get if isinstance(size, dict) else (lambda k, d=None: getattr(size, k, d))
        self.min_pixels = getattr(ip, "min_pixels", None) or get("shortest_edge")
        self.max_pixels = getattr(ip, "max_pixels", None) or get("longest_edge")
        self.patch, self.merge = int(ip.patch_size), int(ip.merge_size)
        self.temporal = int(ip.temporal_patch_size)
        self.resample = ip.resample if ip.resample is not None else Image.Resampling.BICUBIC
        self.do_resize = bool(getattr(ip, "do_resize", True))
        self.scale = float(ip.rescale_factor) * LEVELS if getattr(ip, "do_rescale", True) else float(LEVELS)
        self.normalize = bool(getattr(ip, "do_normalize", True))
        self.mean = torch.tensor(ip.image_mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(ip.image_std, dtype=torch.float32).view(-1, 1, 1)
        if not (self.min_pixels and self.max_pixels):
            raise UnsupportedProcessor(f"{type(ip).__name__} has no min/max pixels (size shortest_edge/longest_edge)")

    def resize(self, image: Image.Image) -> np.ndarray:
        """The 8-bit RGB image at the size the processor resizes it to (H x W x 3 uint8). Resized again until the
        processor keeps the size (one step except at extreme aspect ratios, where smart_resize's output can exceed
        max_pixels and would be resized once more), so that its PNG is read back unchanged."""
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

        rgb = image.convert("RGB")
        for _ in range(4 if self.do_resize else 0):
            h, w = smart_resize(rgb.height, rgb.width, factor=self.patch * self.merge, min_pixels=self.min_pixels,
                                max_pixels=self.max_pixels)
            if (h, w) == (rgb.height, rgb.width):
                break
            rgb = rgb.resize((w, h), resample=self.resample)
        else:
            if self.do_resize:
                raise UnsupportedProcessor(f"an image of {image.width}x{image.height} has no size the processor keeps "
                                           "as it is; crop it to a less extreme aspect ratio")
        return np.asarray(rgb, dtype=np.uint8).copy()

    def patchify(self, x: Tensor) -> Tensor:
        c, h, w = x.shape
        p, m, gh, gw = self.patch, self.merge, h // self.patch, w // self.patch
        patches = x.reshape(c, gh // m, m, p, gw // m, m, p).permute(1, 4, 2, 5, 0, 3, 6)
        patches = patches.unsqueeze(5).expand(*patches.shape[:5], self.temporal, p, p)
        return patches.reshape(gh * gw, c * self.temporal * p * p)

    def pixel_values(self, images: list[Tensor]) -> dict[str, Tensor]:
        """The processor's image tensors of ``images`` (each 3 x H x W in [0, 1], at the resized size)."""
        out, grids = [], []
        for x in images:
            v = x * self.scale
            if self.normalize:
                v = (v - self.mean.to(x.device)) / self.std.to(x.device)
            out.append(self.patchify(v))
            grids.append([1, x.shape[1] // self.patch, x.shape[2] // self.patch])
        return {"pixel_values": torch.cat(out), "image_grid_thw": torch.tensor(grids, dtype=torch.long)}


def pixel_pipeline(processor: Any) -> Qwen2VLPixels:
    """The differentiable preprocessing of ``processor``'s image processor; refuses the ones not reproduced."""
    ip = getattr(processor, "image_processor", None)
    names = set(getattr(ip, "model_input_names", ()) or ())
    if ip is None or not {"pixel_values", "image_grid_thw"} <= names or not all(
            hasattr(ip, k) for k in ("patch_size", "merge_size", "temporal_patch_size")):
        raise UnsupportedProcessor(
            f"the attack reproduces Qwen2-VL-style image processors only (patch_size, merge_size, "
            f"temporal_patch_size, image_grid_thw); {type(ip).__name__} is not one; attack a Qwen2-VL or "
            "Qwen2.5-VL model")
    return Qwen2VLPixels(ip)
