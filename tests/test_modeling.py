"""MirageConfig validation, shapes for any size, losses, SPD geometries, save/reload, Auto classes, pipeline."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import tiny_config
from PIL import Image

from mirage_hf import MirageConfig, MirageForImageRestoration, MirageImageProcessor


def count_parameters(model):
    return sum(parameter.numel() for parameter in model.parameters())


def test_presets_have_official_parameter_counts():
    assert count_parameters(MirageForImageRestoration(MirageConfig.tiny())) == 6_207_412
    small = MirageForImageRestoration(MirageConfig.small())
    assert count_parameters(small) == 9_678_983
    assert count_parameters(small.spd_head) == 49_484


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(embed_dim=32), "multiple of 3"),
        (dict(embed_dim=12, num_heads=[1, 2, 4, 3]), "latent level"),
        (dict(embed_dim=6, num_heads=[4, 1, 1, 1]), "level 1"),
        (dict(depths=[1, 1, 1]), "4 levels"),
        (dict(spd_geometry="riemann"), "spd_geometry"),
        (dict(layer_norm_type="rms"), "layer_norm_type"),
        (dict(gated_kernel_size=4), "odd"),
    ],
)
def test_config_refuses_unbuildable_widths_with_the_rule(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides)


def test_widths_the_official_code_cannot_build_work_here():
    # The official code hard-codes the SPD head for width 24 or 30; here it follows embed_dim.
    model = MirageForImageRestoration(tiny_config(embed_dim=12)).train()
    pixel_values = torch.rand(2, 3, 16, 16)
    outputs = model(pixel_values, labels=pixel_values)
    assert outputs.loss.isfinite()


@pytest.mark.parametrize("height, width", [(16, 16), (17, 23), (5, 9), (1, 1), (72, 40)])
def test_reconstruction_keeps_any_size(tiny_model, height, width):
    pixel_values = torch.rand(2, 3, height, width)
    with torch.no_grad():
        reconstruction = tiny_model(pixel_values).reconstruction
    assert reconstruction.shape == pixel_values.shape
    assert torch.isfinite(reconstruction).all()


def test_padding_does_not_change_images_that_need_none(tiny_model):
    pixel_values = torch.rand(1, 3, 24, 32)
    assert tiny_model.pad_to_multiple(pixel_values) is pixel_values


def test_inference_returns_no_loss_and_skips_spd_head(tiny_model):
    calls = []
    tiny_model.spd_head.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        outputs = tiny_model(torch.rand(1, 3, 16, 16))
    assert outputs.loss is None and outputs.contrastive_loss is None and calls == []


def test_loss_parts_add_up_and_match_their_definitions(tiny_model):
    torch.manual_seed(1)
    pixel_values, labels = torch.rand(3, 3, 16, 16), torch.rand(3, 3, 16, 16)
    outputs = tiny_model(pixel_values, labels=labels)
    reconstruction = outputs.reconstruction
    assert torch.allclose(outputs.l1_loss, (reconstruction - labels).abs().mean())
    spectrum = lambda x: torch.stack([torch.fft.rfft2(x).real, torch.fft.rfft2(x).imag], dim=-1)  # noqa: E731
    expected_fourier = 0.1 * (spectrum(reconstruction) - spectrum(labels)).abs().mean()
    assert torch.allclose(outputs.fourier_loss, expected_fourier, rtol=1e-5)
    assert torch.allclose(outputs.loss, outputs.l1_loss + outputs.fourier_loss + outputs.contrastive_loss)
    # The contrastive term is 0.01 × InfoNCE; InfoNCE over B cosine logits / 0.1 lies in (0, log B + 20).
    assert 0 < outputs.contrastive_loss.item() < 0.01 * (math.log(3) + 20)


def test_contrastive_loss_is_zero_for_a_single_image(tiny_model):
    pixel_values = torch.rand(1, 3, 16, 16)
    assert tiny_model(pixel_values, labels=pixel_values).contrastive_loss.item() == 0.0


def test_backward_reaches_every_parameter():
    model = MirageForImageRestoration(tiny_config(drop_path_rate=0.0)).train()
    pixel_values = torch.rand(2, 3, 16, 16)
    model(pixel_values, labels=torch.rand(2, 3, 16, 16)).loss.backward()
    without_grad = [name for name, parameter in model.named_parameters() if parameter.grad is None]
    assert without_grad == []


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_log_euclidean_geometry_is_stable(dtype):
    from mirage_hf.modeling_mirage import spd_descriptor

    torch.manual_seed(0)
    # Nearly rank-deficient features: few pixels, correlated channels.
    base = torch.randn(2, 1, 4, 4)
    features = (base.repeat(1, 12, 1, 1) + 1e-3 * torch.randn(2, 12, 4, 4)).to(dtype)
    descriptor = spd_descriptor(features, eps=1e-5, geometry="log_euclidean")
    assert descriptor.dtype == torch.float32 and torch.isfinite(descriptor).all()
    # log of a matrix whose eigenvalues are all eps: log(eps) on the diagonal.
    constant = spd_descriptor(torch.ones(1, 3, 4, 4), eps=1e-5, geometry="log_euclidean").reshape(3, 3)
    assert torch.allclose(constant, math.log(1e-5) * torch.eye(3), atol=1e-3)

    model = MirageForImageRestoration(tiny_config(spd_geometry="log_euclidean")).train()
    pixel_values = torch.rand(2, 3, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        outputs = model(pixel_values, labels=pixel_values)
    outputs.loss.backward()
    assert torch.isfinite(outputs.loss)
    assert all(torch.isfinite(p.grad).all() for p in model.spd_head.parameters() if p.grad is not None)


def test_covariance_descriptor_matches_definition():
    from mirage_hf.modeling_mirage import spd_descriptor

    features = torch.randn(2, 4, 3, 5)
    flat = features.reshape(2, 4, 15)
    expected = torch.stack([torch.cov(sample) for sample in flat]) + 1e-5 * torch.eye(4)
    assert torch.allclose(spd_descriptor(features, 1e-5, "covariance"), expected.reshape(2, 16), atol=1e-6)


def test_save_and_reload_is_bit_identical(tmp_path):
    torch.manual_seed(0)
    model = MirageForImageRestoration(tiny_config()).eval()
    with torch.no_grad():  # move every tensor away from its init value, buffers included
        for tensor in list(model.parameters()) + [b for b in model.buffers() if b.is_floating_point()]:
            tensor.add_(torch.randn_like(tensor) * 0.1 + 0.05)
    model.save_pretrained(tmp_path)
    assert {"config.json", "model.safetensors"} <= {p.name for p in tmp_path.iterdir()}
    reloaded = MirageForImageRestoration.from_pretrained(tmp_path)
    original, loaded = model.state_dict(), reloaded.state_dict()
    assert original.keys() == loaded.keys()
    assert all(torch.equal(original[key], loaded[key]) for key in original)
    assert reloaded.config.to_diff_dict() | {"_name_or_path": ""} == model.config.to_diff_dict() | {"_name_or_path": ""}


def test_auto_classes_and_pipeline(tiny_model_dir):
    from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageToImage, pipeline

    assert isinstance(AutoConfig.from_pretrained(tiny_model_dir), MirageConfig)
    assert isinstance(AutoModel.from_pretrained(tiny_model_dir), MirageForImageRestoration)
    assert isinstance(AutoModelForImageToImage.from_pretrained(tiny_model_dir), MirageForImageRestoration)
    assert isinstance(AutoImageProcessor.from_pretrained(tiny_model_dir), MirageImageProcessor)

    restorer = pipeline("image-restoration", model=str(tiny_model_dir), device="cpu")
    image = Image.new("RGB", (37, 21), (120, 30, 200))
    restored = restorer(image)
    assert isinstance(restored, Image.Image) and restored.size == (37, 21) and restored.mode == "RGB"
    tiled = restorer(Image.new("RGB", (70, 50)), tile_size=32, tile_overlap=8)
    assert tiled.size == (70, 50)


def test_tiled_restore_matches_whole_image_for_a_pointwise_model():
    from mirage_hf.tiling import restore_tiled

    pixel_values = torch.rand(2, 3, 70, 45)
    # A per-pixel function is restored exactly by any tiling: checks coverage and blending weights.
    restored = restore_tiled(lambda tiles: tiles.square(), pixel_values, tile_size=32, tile_overlap=8, tile_batch_size=3)
    assert torch.allclose(restored, pixel_values.square(), atol=1e-6)


def test_tiled_restore_of_the_model_is_close_to_whole_image(tiny_model):
    from mirage_hf.inference import restore

    pixel_values = torch.rand(1, 3, 64, 64)
    whole = restore(tiny_model, pixel_values)
    tiled = restore(tiny_model, pixel_values, tile_size=48, tile_overlap=16)
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().mean() < 0.05  # differs only near the seams
