"""Deterministic weights in the official key layout, shared by the parity test and the script that made its fixture.

The fixture stores only the official key names and shapes plus inputs and outputs; the weights are regenerated
here from a seed, so full-size Tiny and Small parity fits in a few hundred KB.
"""

from __future__ import annotations

import math

import torch


def seeded_official_state_dict(keys_and_shapes: list[tuple[str, list[int]]], seed: int) -> dict[str, torch.Tensor]:
    """Fill each official key (in sorted order) from one generator with values that keep activations O(1)."""
    generator = torch.Generator().manual_seed(seed)
    state_dict = {}
    for key, shape in sorted(keys_and_shapes):
        if key.endswith("num_batches_tracked"):
            state_dict[key] = torch.zeros(shape, dtype=torch.long)
            continue
        if key.endswith("running_var"):
            values = 0.75 + 0.5 * torch.rand(shape, generator=generator, dtype=torch.float64)
        elif len(shape) >= 2:
            fan_in = math.prod(shape[1:])
            # PyTorch's default init scale (uniform in ±1/sqrt(fan_in)), as the official model is initialised
            values = (2 * torch.rand(shape, generator=generator, dtype=torch.float64) - 1) / math.sqrt(fan_in)
        elif key.endswith(".bias") or key.endswith("running_mean"):
            values = 0.1 * torch.randn(shape, generator=generator, dtype=torch.float64)
        else:  # norm weights, temperatures, fusion alphas: around 1
            values = 1.0 + 0.1 * torch.randn(shape, generator=generator, dtype=torch.float64)
        state_dict[key] = values.float()
    return state_dict


def seeded_images(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).float()
