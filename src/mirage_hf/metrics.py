"""PSNR and SSIM under the two conventions of the field, in torch (batched, any device), per image.

- `protocol="paper"` (MIRAGE, PromptIR, AdaIR, MoCE-IR): output and target clamped to [0, 1], PSNR on full
  RGB with data range 1, SSIM exactly as `skimage.metrics.structural_similarity(data_range=1,
  channel_axis=...)`: 7x7 uniform window, sample covariance (N/(N-1)), K1 = 0.01, K2 = 0.03, computed per
  channel and averaged over the region at least 3 pixels from every border, then over channels.
  The multiple-of-16 centre crop of input and target happens before the model (`center_crop_multiple`).
- `protocol="y"` (BasicSR `calculate_psnr` / `calculate_ssim` with `test_y_channel=True`): `crop_border`
  pixels removed on each side, the Y channel of ITU-R BT.601 (`16 + 65.481 R + 128.553 G + 24.966 B` on
  [0, 1] RGB, i.e. Y in [16, 235]) on the 0-255 scale, PSNR with peak 255, SSIM with an 11x11 Gaussian
  window (σ = 1.5) over the valid region. Values stay float (no uint8 rounding of the output).

Sums run in float64 (float32 on devices without it) so results match the numpy references to ~1e-7.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from .data import center_crop_multiple

PROTOCOLS = ("paper", "y")
__all__ = ["PROTOCOLS", "MetricAccumulator", "center_crop_multiple", "evaluate_module_path", "psnr", "rgb_to_y", "ssim"]


def _prepare(prediction: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if prediction.shape != target.shape:
        raise ValueError(f"prediction and target shapes differ: {tuple(prediction.shape)} vs {tuple(target.shape)}")
    if prediction.ndim == 3:
        prediction, target = prediction[None], target[None]
    if prediction.ndim != 4:
        raise ValueError(f"expected [B, C, H, W] or [C, H, W] images, got shape {tuple(prediction.shape)}")
    dtype = torch.float32 if prediction.device.type == "mps" else torch.float64
    return prediction.to(dtype).clamp(0.0, 1.0), target.to(dtype).clamp(0.0, 1.0)


def rgb_to_y(images: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] RGB in [0, 1] -> [B, 1, H, W] BT.601 luma Y in [16, 235] (BasicSR `rgb2ycbcr(y_only=True)` × 255)."""
    weights = images.new_tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True) + 16.0


def _to_protocol(prediction, target, protocol: str, crop_border: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The images the metric compares and their data range."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    prediction, target = _prepare(prediction, target)
    if protocol == "paper":
        return prediction, target, 1.0
    if crop_border > 0:
        prediction = prediction[..., crop_border:-crop_border, crop_border:-crop_border]
        target = target[..., crop_border:-crop_border, crop_border:-crop_border]
    return rgb_to_y(prediction), rgb_to_y(target), 255.0


def psnr(prediction: torch.Tensor, target: torch.Tensor, protocol: str = "paper", crop_border: int = 0) -> torch.Tensor:
    """Per-image PSNR in dB, float64 [B] (inf for identical images). Inputs: [B, 3, H, W] or [3, H, W] in [0, 1]."""
    prediction, target, data_range = _to_protocol(prediction, target, protocol, crop_border)
    mse = (prediction - target).square().flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range**2 / mse)


def _uniform_window(size: int, channels: int, reference: torch.Tensor) -> torch.Tensor:
    return reference.new_full((channels, 1, size, size), 1.0 / (size * size))


def _gaussian_window(size: int, sigma: float, channels: int, reference: torch.Tensor) -> torch.Tensor:
    offsets = torch.arange(size, dtype=reference.dtype, device=reference.device) - (size - 1) / 2
    profile = torch.exp(-offsets.square() / (2 * sigma**2))
    profile = profile / profile.sum()
    return torch.outer(profile, profile).expand(channels, 1, size, size).contiguous()


def _ssim_map(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor, data_range: float, covariance_scale: float) -> torch.Tensor:
    """SSIM map over the 'valid' positions (windows fully inside the image), per channel: [B, C, H', W']."""
    channels = x.shape[1]

    def local_mean(values: torch.Tensor) -> torch.Tensor:
        return F.conv2d(values, window, groups=channels)

    mean_x, mean_y = local_mean(x), local_mean(y)
    var_x = covariance_scale * (local_mean(x * x) - mean_x * mean_x)
    var_y = covariance_scale * (local_mean(y * y) - mean_y * mean_y)
    cov_xy = covariance_scale * (local_mean(x * y) - mean_x * mean_y)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return ((2 * mean_x * mean_y + c1) * (2 * cov_xy + c2)) / ((mean_x.square() + mean_y.square() + c1) * (var_x + var_y + c2))


def ssim(prediction: torch.Tensor, target: torch.Tensor, protocol: str = "paper", crop_border: int = 0) -> torch.Tensor:
    """Per-image SSIM, float64 [B]. Inputs: [B, 3, H, W] or [3, H, W] in [0, 1] (at least 7x7, or 11x11 for "y")."""
    prediction, target, data_range = _to_protocol(prediction, target, protocol, crop_border)
    channels = prediction.shape[1]
    if protocol == "paper":
        # skimage: 7x7 box filter, sample covariance, mean over the pixels >= 3 from each border. The 'valid'
        # convolution gives exactly those pixels, so skimage's reflect padding never enters the mean.
        size, window, covariance_scale = 7, _uniform_window(7, channels, prediction), 49.0 / 48.0
    else:
        size, window, covariance_scale = 11, _gaussian_window(11, 1.5, channels, prediction), 1.0
    if min(prediction.shape[-2:]) < size:
        raise ValueError(f"SSIM needs images of at least {size}x{size}, got {tuple(prediction.shape[-2:])}")
    # skimage averages each channel's map and then the channels: equal-size maps, so one mean is the same.
    return _ssim_map(prediction, target, window, data_range, covariance_scale).flatten(1).mean(dim=1)


class MetricAccumulator:
    """Per-image PSNR/SSIM averaged per test set: `update(name, psnr[B], ssim[B])`, then `results()`."""

    def __init__(self) -> None:
        self._sums: dict[str, list[float]] = {}

    def update(self, name: str, psnr_values: torch.Tensor, ssim_values: torch.Tensor) -> None:
        sums = self._sums.setdefault(name, [0.0, 0.0, 0])
        sums[0] += float(psnr_values.double().sum())
        sums[1] += float(ssim_values.double().sum())
        sums[2] += int(psnr_values.numel())

    def results(self) -> dict[str, dict[str, float]]:
        """{name: {"psnr": mean dB, "ssim": mean, "count": images}} in insertion order."""
        return {
            name: {"psnr": psnr_sum / count, "ssim": ssim_sum / count, "count": count}
            for name, (psnr_sum, ssim_sum, count) in self._sums.items()
            if count
        }


def evaluate_module_path(name: str) -> str:
    """Folder of the bundled `evaluate` module (`"psnr"` or `"ssim"`), for `evaluate.load(path)` offline."""
    folder = Path(__file__).parent / "evaluate_metrics" / f"mirage_{name}"
    if not (folder / f"mirage_{name}.py").is_file():
        raise ValueError(f"no bundled evaluate module {name!r}: choose psnr or ssim")
    return str(folder)
