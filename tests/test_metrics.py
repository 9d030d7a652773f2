"""PSNR/SSIM in torch against scikit-image (paper protocol) and a numpy BasicSR reference (Y protocol)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from mirage_hf.metrics import MetricAccumulator, center_crop_multiple, psnr, rgb_to_y, ssim


def _pairs(seed: int = 0):
    """Random, noisy and structured (gradient, checkerboard, flat, out-of-range) [B, 3, H, W] pairs."""
    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(3, 3, 29, 41, generator=g)
    yield clean, (clean + 0.08 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    yield torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    ramp = torch.linspace(0, 1, 37).view(1, 1, 1, 37).expand(2, 3, 23, 37).clone()
    checker = ((torch.arange(23).view(-1, 1) // 3 + torch.arange(37).view(1, -1) // 3) % 2).float().expand(2, 3, 23, 37)
    yield ramp, checker
    flat = torch.full((1, 3, 12, 9), 0.5)
    yield flat, flat + 0.01
    yield ramp, (ramp * 1.3 - 0.1)  # out of [0, 1]: both sides are clamped first


def _hwc(image: torch.Tensor) -> np.ndarray:
    return image.clamp(0, 1).permute(1, 2, 0).numpy()


@pytest.mark.parametrize("case", range(5))
def test_paper_protocol_matches_skimage(case):
    target, prediction = list(_pairs())[case]
    ours_psnr, ours_ssim = psnr(prediction, target), ssim(prediction, target)
    assert ours_psnr.shape == ours_ssim.shape == (target.shape[0],)
    for i in range(target.shape[0]):
        reference_psnr = peak_signal_noise_ratio(_hwc(target[i]), _hwc(prediction[i]), data_range=1)
        reference_ssim = structural_similarity(_hwc(target[i]), _hwc(prediction[i]), data_range=1, channel_axis=2)
        assert abs(ours_psnr[i].item() - reference_psnr) < 1e-4
        assert abs(ours_ssim[i].item() - reference_ssim) < 1e-5


def test_identical_images_and_unbatched_input():
    image = torch.rand(3, 20, 24)
    assert math.isinf(psnr(image, image).item())
    assert ssim(image, image).item() == pytest.approx(1.0, abs=1e-12)
    assert psnr(image, 1 - image).shape == (1,)


def _basicsr_reference(prediction: np.ndarray, target: np.ndarray, crop_border: int) -> tuple[float, float]:
    """BasicSR calculate_psnr/ssim(test_y_channel=True) rewritten in numpy for HWC RGB float in [0, 1]."""

    def y_channel(image):
        image = image[crop_border : image.shape[0] - crop_border, crop_border : image.shape[1] - crop_border]
        return image @ np.array([65.481, 128.553, 24.966]) + 16.0

    x, y = y_channel(prediction.astype(np.float64)), y_channel(target.astype(np.float64))
    psnr_value = 10 * np.log10(255.0**2 / np.mean((x - y) ** 2))
    profile = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    profile /= profile.sum()
    window = np.outer(profile, profile)

    def filt(values):
        return correlate2d(values, window, mode="valid")

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = filt(x), filt(y)
    var_x, var_y, cov = filt(x * x) - mu_x**2, filt(y * y) - mu_y**2, filt(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return psnr_value, ssim_map.mean()


@pytest.mark.parametrize("crop_border", [0, 4])
def test_y_protocol_matches_basicsr_formulas(crop_border):
    target, prediction = next(_pairs(1))
    ours_psnr = psnr(prediction, target, protocol="y", crop_border=crop_border)
    ours_ssim = ssim(prediction, target, protocol="y", crop_border=crop_border)
    for i in range(target.shape[0]):
        reference_psnr, reference_ssim = _basicsr_reference(_hwc(prediction[i]), _hwc(target[i]), crop_border)
        assert abs(ours_psnr[i].item() - reference_psnr) < 1e-6
        assert abs(ours_ssim[i].item() - reference_ssim) < 1e-8


def test_rgb_to_y_range():
    corners = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]).view(2, 3, 1, 1)
    assert rgb_to_y(corners).flatten().tolist() == pytest.approx([16.0, 235.0])


def test_errors():
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
    with pytest.raises(ValueError, match="at least 7x7"):
        ssim(torch.rand(1, 3, 6, 8), torch.rand(1, 3, 6, 8))
    with pytest.raises(ValueError, match="unknown protocol"):
        psnr(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), protocol="matlab")


def test_center_crop_multiple_matches_official_rule():
    # the official crop_img: drop h % 16 rows, (h % 16) // 2 of them at the top (the odd one at the bottom)
    image = np.arange(35 * 33 * 3).reshape(35, 33, 3)
    cropped = center_crop_multiple(image)
    assert cropped.shape == (32, 32, 3)
    assert (cropped == image[1:33, 0:32]).all()
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None]
    assert torch.equal(center_crop_multiple(tensor), torch.from_numpy(cropped).permute(2, 0, 1)[None])
    assert center_crop_multiple(np.zeros((32, 48, 3))).shape == (32, 48, 3)


def test_accumulator_averages_per_image_per_set():
    accumulator = MetricAccumulator()
    accumulator.update("A", torch.tensor([30.0, 32.0]), torch.tensor([0.8, 0.9]))
    accumulator.update("A", torch.tensor([34.0]), torch.tensor([1.0]))
    accumulator.update("B", torch.tensor([20.0]), torch.tensor([0.5]))
    results = accumulator.results()
    assert list(results) == ["A", "B"]
    assert results["A"] == pytest.approx({"psnr": 32.0, "ssim": 0.9, "count": 3})
    assert results["B"]["count"] == 1


def test_evaluate_modules_load_offline():
    evaluate = pytest.importorskip("evaluate")
    from mirage_hf.metrics import evaluate_module_path

    g = torch.Generator().manual_seed(3)
    predictions, references = torch.rand(2, 3, 20, 24, generator=g), torch.rand(2, 3, 20, 24, generator=g)
    for name, function in (("psnr", psnr), ("ssim", ssim)):
        metric = evaluate.load(evaluate_module_path(name))
        result = metric.compute(predictions=list(predictions.numpy()), references=list(references.numpy()))
        expected = function(predictions, references)
        assert result[f"{name}_per_image"] == pytest.approx(expected.tolist(), abs=1e-6)
        assert result[name] == pytest.approx(expected.mean().item(), abs=1e-6)
    with pytest.raises(ValueError):
        evaluate_module_path("lpips")
