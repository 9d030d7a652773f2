"""Synthetic degradations: determinism, types, the physics of each model, and the paired-dataset builder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mirage_hf import degradations as D

H, W = 32, 40


@pytest.fixture
def clean_uint8():
    """A smooth, mid-grey-ish RGB image with some texture (no pure black or white)."""
    rng = np.random.default_rng(123)
    ys, xs = np.mgrid[0:H, 0:W]
    base = 60 + 100 * (xs / W)[..., None] + 40 * (ys / H)[..., None] * np.array([1.0, 0.5, 0.2])
    return np.clip(base + rng.integers(-10, 10, (H, W, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("kind", list(D.DEGRADATIONS))
def test_every_kind_is_deterministic_and_keeps_types(kind, clean_uint8):
    out = D.degrade(clean_uint8, kind, seed=7)
    assert out.dtype == np.uint8 and out.shape == clean_uint8.shape
    assert np.array_equal(out, D.degrade(clean_uint8, kind, seed=7))
    assert not np.array_equal(out, D.degrade(clean_uint8, kind, seed=8))
    assert not np.array_equal(out, clean_uint8)

    pil = D.degrade(Image.fromarray(clean_uint8), kind, seed=7)
    assert isinstance(pil, Image.Image) and pil.size == (W, H) and pil.mode == "RGB"
    assert np.array_equal(np.asarray(pil), out)  # PIL and uint8 numpy go through the same path

    batch = torch.from_numpy(clean_uint8).permute(2, 0, 1)[None].float().div(255).repeat(3, 1, 1, 1)
    out_batch = D.degrade(batch, kind, seed=7)
    assert out_batch.shape == batch.shape and out_batch.dtype == torch.float32
    assert 0 <= out_batch.min() and out_batch.max() <= 1
    assert torch.equal(out_batch, D.degrade(batch, kind, seed=7))
    # one parameter draw per sample: identical inputs come out different
    assert not torch.equal(out_batch[0], out_batch[1])
    # a batch of one gives the single-image result
    one = D.degrade(batch[:1], kind, seed=7)
    assert np.array_equal(D._to_uint8(one[0]), out)


def test_seed_kinds_agree(clean_uint8):
    reference = D.add_rain(clean_uint8, seed=np.random.default_rng(3))
    assert np.array_equal(reference, D.add_rain(clean_uint8, seed=3))
    assert np.array_equal(reference, D.add_rain(clean_uint8, seed=np.random.SeedSequence(3)))
    from_torch = D.add_rain(clean_uint8, seed=torch.Generator().manual_seed(3))
    assert np.array_equal(from_torch, D.add_rain(clean_uint8, seed=torch.Generator().manual_seed(3)))
    rng = np.random.default_rng(3)  # a Generator is advanced: consecutive calls differ
    assert not np.array_equal(D.add_rain(clean_uint8, seed=rng), D.add_rain(clean_uint8, seed=rng))


def test_float_numpy_and_chw_tensor(clean_uint8):
    as_float = clean_uint8.astype(np.float32) / 255
    out = D.add_haze(as_float, seed=0)
    assert out.dtype == np.float32 and out.shape == as_float.shape
    chw = torch.from_numpy(as_float).permute(2, 0, 1).double()
    out_chw = D.add_haze(chw, seed=0)
    assert out_chw.shape == chw.shape and out_chw.dtype == torch.float64
    with pytest.raises(ValueError):
        D.add_haze(clean_uint8[..., 0], seed=0)
    with pytest.raises(ValueError):
        D.degrade(clean_uint8, "fog")


@pytest.mark.parametrize("sigma", [15, 25, 50])
def test_noise_is_the_paper_protocol_bit_exact(sigma, clean_uint8):
    expected = np.clip(clean_uint8 + np.random.default_rng(5).standard_normal(clean_uint8.shape) * sigma, 0, 255)
    expected = expected.astype(np.uint8)
    assert np.array_equal(D.add_noise(clean_uint8, sigma=sigma, seed=5), expected)
    assert np.array_equal(D.degrade(clean_uint8, f"noise_{sigma}", seed=5), expected)
    # the float batch form gives the same pixels
    batch = torch.from_numpy(clean_uint8).permute(2, 0, 1)[None].float() / 255
    out = D.add_noise(batch, sigma=sigma, seed=5)
    assert torch.equal(out * 255, torch.from_numpy(expected).permute(2, 0, 1)[None].float())
    # RandomState(0) reproduces the official test script's np.random.seed(0) stream
    legacy = np.clip(clean_uint8 + np.random.RandomState(0).randn(*clean_uint8.shape) * sigma, 0, 255).astype(np.uint8)
    assert np.array_equal(D.add_noise(clean_uint8, sigma=sigma, seed=np.random.RandomState(0)), legacy)


def test_noise_truncates_rather_than_rounds():
    flat = np.full((8, 8, 3), 100, np.uint8)
    noise = np.random.default_rng(1).standard_normal(flat.shape) * 25
    out = D.add_noise(flat, sigma=25, seed=1).astype(int)
    assert np.array_equal(out, np.floor(np.clip(100 + noise, 0, 255)).astype(int))
    assert not np.array_equal(out, np.round(np.clip(100 + noise, 0, 255)).astype(int))


def test_haze_obeys_the_scattering_model(clean_uint8):
    clean = torch.from_numpy(clean_uint8).permute(2, 0, 1)[None].float() / 255
    beta, airlight, depth = 1.3, 0.85, 0.6
    out = D.add_haze(clean, beta=beta, airlight=airlight, depth=depth, seed=0)
    t = np.exp(-beta * depth)
    assert torch.allclose(out, clean * t + airlight * (1 - t), atol=1e-6)
    depth_map = torch.linspace(0.2, 1, W).expand(1, 1, H, W)
    out = D.add_haze(clean, beta=beta, airlight=airlight, depth=depth_map, seed=0)
    t = torch.exp(-beta * depth_map)
    assert torch.allclose(out, clean * t + airlight * (1 - t), atol=1e-6)
    proxy = D.depth_proxy(clean.repeat(2, 1, 1, 1), seed=4)
    assert proxy.shape == (2, 1, H, W) and proxy.min() >= 0.2 - 1e-6 and proxy.max() <= 1 + 1e-6
    assert torch.equal(proxy, D.depth_proxy(clean.repeat(2, 1, 1, 1), seed=4))
    # more haze -> lower contrast
    assert D.add_haze(clean, beta=2.0, seed=0).std() < D.add_haze(clean, beta=0.5, seed=0).std() < clean.std()


@pytest.mark.parametrize("size", [1, 5, 16, 31])
def test_blur_kernels_sum_to_one(size):
    kernel = D.motion_blur_kernel(size, seed=size)
    assert kernel.shape == (size, size) and kernel.dtype == np.float32
    assert kernel.min() >= 0 and abs(float(kernel.sum()) - 1) < 1e-5
    assert np.array_equal(kernel, D.motion_blur_kernel(size, seed=size))


def test_blur_keeps_a_constant_image_and_smooths(clean_uint8):
    constant = np.full((H, W, 3), 137, np.uint8)
    for size in (7, 31, 63):  # 63 > image side: replicate padding
        assert np.array_equal(D.add_motion_blur(constant, kernel_size=size, seed=0), constant)
    assert np.array_equal(D.add_motion_blur(clean_uint8, kernel_size=1, seed=0), clean_uint8)
    noisy = np.random.default_rng(0).integers(0, 256, (H, W, 3)).astype(np.uint8)
    assert D.add_motion_blur(noisy, kernel_size=9, seed=0).std() < noisy.std() / 2


def test_lowlight_lowers_brightness(clean_uint8):
    out = D.add_lowlight(clean_uint8, seed=0)
    assert out.mean() < clean_uint8.mean() / 2
    strong, mild = (D.add_lowlight(clean_uint8, strength=s, seed=0).mean() for s in (1.0, 0.3))
    assert strong < mild
    unchanged = D.add_lowlight(clean_uint8, strength=0.0, seed=0)
    assert np.array_equal(unchanged, clean_uint8)
    # without noise it is exactly exposure * x ** gamma
    x = torch.from_numpy(clean_uint8).permute(2, 0, 1)[None].float() / 255
    out = D.add_lowlight(x, exposure=0.2, gamma=1.5, shot_noise=0, read_noise=0, seed=0)
    assert torch.allclose(out, 0.2 * x**1.5, atol=1e-6)


def test_rain_adds_bright_streaks(clean_uint8):
    out = D.add_rain(clean_uint8, amount=1.0, seed=0).astype(int)
    diff = out - clean_uint8
    assert diff.min() >= 0  # screen blend only brightens
    assert (diff.max(axis=2) > 30).mean() > 0.01  # some pixels got a visible streak
    more = D.add_rain(clean_uint8, amount=1.0, seed=0).mean()
    less = D.add_rain(clean_uint8, amount=0.1, seed=0).mean()
    assert more > less > clean_uint8.mean()
    assert D.add_snow(clean_uint8, seed=0).mean() > clean_uint8.mean()


def test_compositions_apply_every_part_in_physical_order(clean_uint8):
    assert D.COMPOSITE_KINDS == ("low_haze", "low_rain", "low_snow", "haze_rain", "haze_snow", "low_haze_rain",
                                 "low_haze_snow")
    x = torch.from_numpy(clean_uint8).permute(2, 0, 1)[None].float() / 255
    rng = np.random.default_rng(9)
    expected = D._lowlight(D._rain(D._haze(x, rng), rng), rng)
    assert torch.equal(D.degrade(x, "low_haze_rain", seed=9), expected)
    low_haze = D.degrade(clean_uint8, "low_haze", seed=0)
    assert low_haze.mean() < clean_uint8.mean() / 2
    from mirage_hf.data import CDD11_KINDS

    assert set(CDD11_KINDS) <= set(D.DEGRADATIONS)
    assert D.task_of("low_haze_rain") == "composite" and D.task_of("noise_25") == "denoise"
    assert [D.task_of(k) for k in ("rain", "haze", "blur", "lowlight")] == ["derain", "dehaze", "deblur", "lowlight"]


def _clean_folder(tmp_path, n=3):
    folder = tmp_path / "my_photos"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        target = folder / "sub" / f"b{i}.jpg" if i == n - 1 else folder / f"a{i}.png"
        Image.fromarray(rng.integers(0, 256, (H + 8 * i, W, 3), dtype=np.uint8)).save(target)
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_synthesize_dataset_from_folder(tmp_path):
    import datasets

    folder = _clean_folder(tmp_path)
    kinds = ["noise_25", "rain", "low_haze"]
    ds = D.synthesize_dataset(folder, kinds=kinds, seed=1, num_variants=2, cache_dir=str(tmp_path / "cache1"))
    assert len(ds) == 3 * len(kinds) * 2
    assert set(ds.column_names) == {"input", "target", "task", "degradation", "source", "id"}
    assert isinstance(ds.features["input"], datasets.Image) and isinstance(ds.features["task"], datasets.ClassLabel)
    from mirage_hf.data import mirage_features

    assert ds.features == mirage_features()
    assert ds[0]["id"] == "a0_noise_25_0" and ds[1]["id"] == "a0_noise_25_1" and ds[-1]["id"] == "sub_b2_low_haze_1"
    assert set(ds["source"]) == {"synthetic:my_photos"}
    assert ds.features["task"].int2str(ds[2]["task"]) == "derain" and ds[4]["degradation"] == "low_haze"
    row = ds[0]
    clean = np.asarray(Image.open(folder / "a0.png"))
    assert np.array_equal(np.asarray(row["target"]), clean)
    assert np.array_equal(np.asarray(row["input"]), D.add_noise(clean, 25, seed=D.row_seed(1, 0, "noise_25", 0)))
    assert ds[0]["input"].size == ds[0]["target"].size
    assert not np.array_equal(np.asarray(ds[0]["input"]), np.asarray(ds[1]["input"]))  # variants differ

    again = D.synthesize_dataset(folder, kinds=kinds, seed=1, num_variants=2, cache_dir=str(tmp_path / "cache2"))
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(ds["input"], again["input"]))
    # a row depends on (seed, image, kind, variant) only, not on which other kinds are made
    rain_only = D.synthesize_dataset(folder, kinds=["rain"], seed=1, num_variants=2, cache_dir=str(tmp_path / "cache3"))
    assert np.array_equal(np.asarray(rain_only[1]["input"]), np.asarray(ds[3]["input"]))
    other_seed = D.synthesize_dataset(folder, kinds=["rain"], seed=2, cache_dir=str(tmp_path / "cache3"))
    assert not np.array_equal(np.asarray(other_seed[0]["input"]), np.asarray(rain_only[0]["input"]))


def test_synthesize_dataset_from_dataset_and_max_size(tmp_path):
    import datasets

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)) for _ in range(2)]
    source = datasets.Dataset.from_dict({"photo": images, "label": [0, 1]},
                                        features=datasets.Features({"photo": datasets.Image(),
                                                                    "label": datasets.Value("int64")}))
    ds = D.synthesize_dataset(source, kinds=["blur"], max_size=32, source_name="synthetic:test",
                              cache_dir=str(tmp_path / "cache"))
    assert len(ds) == 2 and ds[0]["target"].size == (24, 32) and ds[0]["input"].size == (24, 32)
    assert ds["id"] == ["000000_blur_0", "000001_blur_0"] and ds[0]["source"] == "synthetic:test"


def test_synthesize_dataset_errors(tmp_path):
    from mirage_hf.errors import MirageError

    folder = _clean_folder(tmp_path)
    with pytest.raises(MirageError, match="unknown degradation"):
        D.synthesize_dataset(folder, kinds=["fog"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(MirageError, match="no images"):
        D.synthesize_dataset(tmp_path / "empty")
    (folder / "broken.png").write_bytes(b"not a png")
    with pytest.raises(MirageError, match="broken.png"):
        D.synthesize_dataset(folder, kinds=["rain"])
    with pytest.raises(MirageError, match="neither a folder"):
        D.synthesize_dataset(tmp_path / "missing_folder", kinds=["rain"])
    with pytest.raises(MirageError, match="num_variants"):
        D.synthesize_dataset(folder, kinds=["rain"], num_variants=0)
