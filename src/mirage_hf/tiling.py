"""Tiled inference: restore an image of any size in bounded memory.

The image is cut into overlapping `tile_size` squares (the last row and column are shifted inwards so
every tile is full size), tiles are restored in batches, and each output pixel is the weighted mean of
the tiles covering it. The weight ramps linearly from the tile border to `tile_overlap` pixels inside,
so seams fade instead of switching abruptly. Written by hand: no library here blends overlapping tiles
for an arbitrary image-to-image model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def tile_starts(length: int, tile_size: int, stride: int) -> list[int]:
    """Start offsets covering [0, length) with tiles of `tile_size` (the last one ends exactly at `length`)."""
    if length <= tile_size:
        return [0]
    starts = list(range(0, length - tile_size, stride))
    starts.append(length - tile_size)
    return starts


def blend_window(tile_height: int, tile_width: int, overlap: int, device=None) -> torch.Tensor:
    """[1, 1, h, w] weights: 1 inside, a linear ramp over `overlap` pixels at each border (never 0)."""

    def ramp(length: int) -> torch.Tensor:
        position = torch.arange(length, device=device, dtype=torch.float32)
        distance = torch.minimum(position, length - 1 - position) + 1  # 1 at the border
        return (distance / max(overlap, 1)).clamp(max=1.0)

    return (ramp(tile_height)[:, None] * ramp(tile_width)[None, :])[None, None]


@torch.no_grad()
def restore_tiled(
    restore_batch: Callable[[torch.Tensor], torch.Tensor],
    pixel_values: torch.Tensor,
    tile_size: int,
    tile_overlap: int = 32,
    tile_batch_size: int = 4,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Restore [B, C, H, W] `pixel_values` tile by tile with `restore_batch` ([N, C, t, t] -> [N, C, t, t]).

    The output is accumulated on the device of `pixel_values` (keep that on the CPU for huge photos and let
    `restore_batch` move tiles to the accelerator). `progress(done, total)` is called after each batch.
    """
    if tile_size <= 0:
        raise ValueError(f"tile_size must be positive, got {tile_size}")
    if not 0 <= tile_overlap < tile_size:
        raise ValueError(f"tile_overlap must be in [0, tile_size), got {tile_overlap} for tile_size {tile_size}")
    batch_size, channels, height, width = pixel_values.shape
    tile_height, tile_width = min(tile_size, height), min(tile_size, width)
    stride = tile_size - tile_overlap
    boxes = [(top, left) for top in tile_starts(height, tile_height, stride) for left in tile_starts(width, tile_width, stride)]

    output = torch.zeros_like(pixel_values, dtype=torch.float32)
    weight_sum = torch.zeros((1, 1, height, width), dtype=torch.float32, device=pixel_values.device)
    window = blend_window(tile_height, tile_width, tile_overlap, device=pixel_values.device)
    for top, left in boxes:
        weight_sum[..., top : top + tile_height, left : left + tile_width] += window

    jobs = [(image_index, top, left) for image_index in range(batch_size) for top, left in boxes]
    for start in range(0, len(jobs), tile_batch_size):
        chunk = jobs[start : start + tile_batch_size]
        tiles = torch.stack(
            [pixel_values[index, :, top : top + tile_height, left : left + tile_width] for index, top, left in chunk]
        )
        restored = restore_batch(tiles).to(device=output.device, dtype=torch.float32) * window
        for (index, top, left), tile in zip(chunk, restored):
            output[index, :, top : top + tile_height, left : left + tile_width] += tile
        if progress is not None:
            progress(min(start + tile_batch_size, len(jobs)), len(jobs))
    return output / weight_sum
