"""MIRAGE's training losses besides plain L1: the Fourier L1 loss and the InfoNCE loss on SPD embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def fourier_l1_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between the real and imaginary parts of `rfft2` (unnormalised) of two images.

    rfft2 runs in fp32 (half-precision FFTs need power-of-two sizes and lose accuracy).
    """
    with torch.autocast(device_type=prediction.device.type, enabled=False):
        prediction_spectrum = torch.view_as_real(torch.fft.rfft2(prediction.float()))
        target_spectrum = torch.view_as_real(torch.fft.rfft2(target.float()))
        return F.l1_loss(prediction_spectrum, target_spectrum)


def info_nce_loss(queries: torch.Tensor, keys: torch.Tensor, temperature: float) -> torch.Tensor:
    """One-directional InfoNCE: `queries[i]` should match `keys[i]` against the other keys of the batch.

    Both are [B, D] and L2-normalised; the logits are cosine similarities / temperature. Exactly 0 at B = 1.
    """
    logits = queries.float() @ keys.float().T / temperature  # [B, B]
    labels = torch.arange(queries.shape[0], device=queries.device)
    return F.cross_entropy(logits, labels)
