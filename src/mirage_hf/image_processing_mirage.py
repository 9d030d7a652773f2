"""Image processor for MIRAGE: any common image in, float RGB in [0, 1] out (and back).

MIRAGE needs no resizing or normalisation: the model takes RGB in [0, 1] at any size. What this processor
does is make every input kind land there the same way -- PIL images in any mode (RGB, L, LA, RGBA, P,
16-bit and 32-bit integer or float modes), EXIF-rotated JPEGs, numpy arrays and torch tensors -- and turn
the model's output back into PIL images or uint8 arrays with rounding.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from PIL import Image, ImageOps
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature

ImageLike = Image.Image | np.ndarray | torch.Tensor


def _pil_to_float_array(image: Image.Image) -> np.ndarray:
    """PIL image in any mode -> float32 [H, W, 3] in [0, 1], upright (EXIF orientation applied), alpha dropped."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return _array_to_float_rgb(np.asarray(image, dtype=np.uint16))
    if image.mode == "I":  # 32-bit integer, in practice 16-bit data (PNG 16-bit grey is read as "I" by older PIL)
        array = np.asarray(image, dtype=np.int64)
        scale = 65535.0 if array.max(initial=0) > 255 else 255.0
        return _gray_to_rgb(np.clip(array / scale, 0.0, 1.0).astype(np.float32))
    if image.mode == "F":
        return _gray_to_rgb(np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode != "RGB":
        image = image.convert("RGB")  # L, LA, RGBA, CMYK, YCbCr, 1: PIL's own conversion; alpha is dropped
    return np.asarray(image, dtype=np.float32) / 255.0


def _gray_to_rgb(array: np.ndarray) -> np.ndarray:
    return np.repeat(array[..., None], 3, axis=-1)


def _array_to_float_rgb(array: np.ndarray) -> np.ndarray:
    """numpy [H, W], [H, W, 1|2|3|4] (uint8, uint16 or float in [0, 1]) -> float32 [H, W, 3] in [0, 1]."""
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        array = array.astype(np.float32) / 65535.0
    elif array.dtype == np.bool_:
        array = array.astype(np.float32)
    elif np.issubdtype(array.dtype, np.floating):
        array = np.clip(array.astype(np.float32), 0.0, 1.0)
    else:
        raise ValueError(f"unsupported array dtype {array.dtype}: use uint8, uint16 or float in [0, 1]")
    if array.ndim == 2:
        return _gray_to_rgb(array)
    if array.ndim != 3 or array.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"expected an image array of shape [H, W] or [H, W, 1|2|3|4], got {tuple(array.shape)}")
    if array.shape[-1] in (1, 2):  # grey (+ alpha)
        return _gray_to_rgb(array[..., 0])
    return array[..., :3]


def _tensor_to_float_chw(tensor: torch.Tensor) -> torch.Tensor:
    """torch [C, H, W] (C in 1..4, channels first as torch images are) -> float32 [3, H, W] in [0, 1]."""
    if tensor.ndim == 2:
        tensor = tensor[None]
    if tensor.ndim != 3 or tensor.shape[0] not in (1, 2, 3, 4):
        raise ValueError(f"expected an image tensor of shape [C, H, W] with C in 1..4, got {tuple(tensor.shape)}")
    if tensor.dtype == torch.uint8:
        tensor = tensor.float() / 255.0
    elif tensor.dtype == torch.uint16 or tensor.dtype == torch.int32 and tensor.max() > 255:
        tensor = tensor.float() / 65535.0
    elif tensor.is_floating_point():
        tensor = tensor.float().clamp(0.0, 1.0)
    else:
        raise ValueError(f"unsupported tensor dtype {tensor.dtype}: use uint8, uint16 or float in [0, 1]")
    if tensor.shape[0] in (1, 2):
        return tensor[:1].expand(3, -1, -1).contiguous()
    return tensor[:3].contiguous()


class MirageImageProcessor(BaseImageProcessor):
    r"""
    Turns images into MIRAGE `pixel_values` (float32 RGB in [0, 1], `[batch, 3, height, width]`) and model
    outputs back into images. Images of different sizes cannot share a batch: pass them one at a time.
    """

    model_input_names = ["pixel_values"]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def to_pixel_values(self, image: ImageLike) -> torch.Tensor:
        """One image (PIL, numpy [H, W(, C)] or torch [C, H, W]) -> float32 [3, H, W] in [0, 1]."""
        if isinstance(image, Image.Image):
            return torch.from_numpy(_pil_to_float_array(image)).permute(2, 0, 1).contiguous()
        if isinstance(image, np.ndarray):
            return torch.from_numpy(np.ascontiguousarray(_array_to_float_rgb(image))).permute(2, 0, 1).contiguous()
        if isinstance(image, torch.Tensor):
            return _tensor_to_float_chw(image.detach().cpu())
        raise TypeError(f"expected a PIL image, a numpy array or a torch tensor, got {type(image).__name__}")

    def preprocess(self, images: ImageLike | list[ImageLike], return_tensors: str | None = "pt", **kwargs) -> BatchFeature:
        if isinstance(images, torch.Tensor) and images.ndim == 4:
            images = list(images)
        elif not isinstance(images, (list, tuple)):
            images = [images]
        if len(images) == 0:
            raise ValueError("no images given")
        pixel_values = [self.to_pixel_values(image) for image in images]
        sizes = {tuple(values.shape[-2:]) for values in pixel_values}
        if len(sizes) > 1:
            raise ValueError(f"images of different sizes {sorted(sizes)} cannot be batched: process them one at a time")
        return BatchFeature(data={"pixel_values": torch.stack(pixel_values)}, tensor_type=return_tensors)

    def __call__(self, images: ImageLike | list[ImageLike], return_tensors: str | None = "pt", **kwargs) -> BatchFeature:
        return self.preprocess(images, return_tensors=return_tensors, **kwargs)

    def post_process(
        self, reconstruction: torch.Tensor, output_type: Literal["pil", "np", "pt"] = "pil"
    ) -> list[Any] | torch.Tensor:
        """Model output `[B, 3, H, W]` (or `[3, H, W]`) -> list of PIL images, list of uint8 `[H, W, 3]` arrays,
        or the clamped float tensor. Values are clamped to [0, 1] and rounded (not truncated) to 8 bits."""
        reconstruction = reconstruction.detach()
        if reconstruction.ndim == 3:
            reconstruction = reconstruction[None]
        reconstruction = reconstruction.float().clamp(0.0, 1.0)
        if output_type == "pt":
            return reconstruction
        arrays = (reconstruction * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        if output_type == "np":
            return list(arrays)
        if output_type == "pil":
            return [Image.fromarray(array) for array in arrays]
        raise ValueError(f"output_type must be 'pil', 'np' or 'pt', got {output_type!r}")


__all__ = ["MirageImageProcessor"]
