"""MirageImageProcessor: every input kind lands in float RGB [0, 1]; post-processing rounds back to 8 bits."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import random_rgb
from PIL import Image

from mirage_hf import MirageImageProcessor


@pytest.fixture
def processor():
    return MirageImageProcessor()


def test_rgb_pil_numpy_and_torch_agree(processor):
    array = random_rgb(9, 13)
    expected = torch.from_numpy(array).permute(2, 0, 1).float() / 255
    for image in (Image.fromarray(array), array, torch.from_numpy(array).permute(2, 0, 1)):
        pixel_values = processor(image)["pixel_values"]
        assert pixel_values.shape == (1, 3, 9, 13) and pixel_values.dtype == torch.float32
        assert torch.equal(pixel_values[0], expected)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "I;16", "I", "F", "1", "CMYK"])
def test_pil_modes_become_rgb(processor, mode):
    array = random_rgb(8, 6)
    image = Image.fromarray(array).convert(mode) if mode not in ("I;16", "F") else None
    if mode == "I;16":
        image = Image.fromarray(array[..., 0].astype(np.uint16) * 257)  # mode I;16
    if mode == "F":
        image = Image.fromarray(array[..., 0].astype(np.float32) / 255.0)  # mode F
    pixel_values = processor(image)["pixel_values"]
    assert pixel_values.shape == (1, 3, 8, 6)
    assert 0.0 <= pixel_values.min() and pixel_values.max() <= 1.0
    if mode in ("I;16", "F"):
        assert torch.allclose(pixel_values[0, 0], torch.from_numpy(array[..., 0]).float() / 255, atol=1e-6)


def test_sixteen_bit_png_keeps_precision(processor, tmp_path):
    values = np.arange(0, 65536, 257 * 3, dtype=np.uint16)[:80].reshape(8, 10)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)  # uint16 -> mode I;16
    with Image.open(path) as image:
        pixel_values = processor(image)["pixel_values"]
    assert torch.allclose(pixel_values[0, 1], torch.from_numpy(values.astype(np.float32) / 65535), atol=1e-6)
    deep_rgb = np.stack([values] * 3, axis=-1)
    assert torch.allclose(processor(deep_rgb)["pixel_values"][0, 2], torch.from_numpy(values / 65535).float())


def test_exif_rotated_jpeg_is_made_upright(processor):
    image = Image.fromarray(random_rgb(10, 20))  # 20 wide, 10 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    buffer.seek(0)
    with Image.open(buffer) as jpeg:
        pixel_values = processor(jpeg)["pixel_values"]
    assert pixel_values.shape == (1, 3, 20, 10)


def test_numpy_layouts_and_dtypes(processor):
    gray = np.full((4, 5), 51, dtype=np.uint8)
    assert torch.allclose(processor(gray)["pixel_values"], torch.full((1, 3, 4, 5), 0.2))
    assert processor(gray[..., None])["pixel_values"].shape == (1, 3, 4, 5)
    rgba = np.zeros((4, 5, 4), dtype=np.float32)
    assert processor(rgba)["pixel_values"].shape == (1, 3, 4, 5)
    with pytest.raises(ValueError, match="dtype"):
        processor(np.zeros((4, 5, 3), dtype=np.int8))
    with pytest.raises(ValueError, match="shape"):
        processor(np.zeros((4, 5, 7), dtype=np.uint8))


def test_batches_need_one_size(processor):
    batch = processor([random_rgb(6, 6, 1), random_rgb(6, 6, 2)])["pixel_values"]
    assert batch.shape == (2, 3, 6, 6)
    with pytest.raises(ValueError, match="different sizes"):
        processor([random_rgb(6, 6), random_rgb(7, 6)])
    assert processor(torch.rand(3, 3, 5, 4))["pixel_values"].shape == (3, 3, 5, 4)


def test_post_process_rounds_and_clamps(processor):
    reconstruction = torch.tensor([0.6 / 255, 1.49 / 255, -0.2, 1.7]).reshape(1, 1, 2, 2).expand(1, 3, 2, 2)
    array = processor.post_process(reconstruction, output_type="np")[0]
    assert array.dtype == np.uint8 and array[..., 0].tolist() == [[1, 1], [0, 255]]
    image = processor.post_process(reconstruction[0], output_type="pil")[0]
    assert image.size == (2, 2) and image.mode == "RGB"
    uint8 = random_rgb(5, 7)
    round_trip = processor.post_process(processor(uint8)["pixel_values"], output_type="np")[0]
    assert np.array_equal(round_trip, uint8)


def test_processor_save_and_load(processor, tmp_path):
    processor.save_pretrained(tmp_path)
    assert isinstance(MirageImageProcessor.from_pretrained(tmp_path), MirageImageProcessor)
