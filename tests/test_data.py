"""Benchmark layouts -> datasets: schema, pairing rules, error listing, reproducible noise, saving/loading,
paired training transforms and the training mix. Layouts are tiny folders written by `fixtures_data`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures_data import make_cdd11_layout, make_test_layout, make_train_layout, write_corrupt, write_image
from PIL import Image

from mirage_hf.cli import main
from mirage_hf.data import (
    TASK_NAMES,
    PairedTrainTransform,
    add_gaussian_noise,
    build_dataset_dict,
    count_rows,
    dihedral,
    load_built_dataset,
    load_rgb,
    mirage_features,
    noise_rng,
    save_dataset_dict,
    streaming_mixture_probabilities,
    training_mixture,
)
from mirage_hf.errors import MirageError


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The three layouts built once: {kind: (root, DatasetDict)}."""
    base = tmp_path_factory.mktemp("layouts")
    cache = base / "cache"
    roots = {
        "train": make_train_layout(base / "train"),
        "test": make_test_layout(base / "test"),
        "cdd11": make_cdd11_layout(base / "cdd11"),
    }
    return {kind: (root, build_dataset_dict(kind, root, cache_dir=cache)) for kind, root in roots.items()}


def test_schema_is_shared():
    import mirage_hf.data as data

    features = mirage_features()
    assert list(features) == ["input", "target", "task", "degradation", "source", "id"]
    assert features["task"].names == TASK_NAMES == ["denoise", "derain", "dehaze", "deblur", "lowlight", "composite"]
    assert data.MIRAGE_FEATURES == features


def test_train_layout(built):
    root, dataset_dict = built["train"]
    train = dataset_dict["train"]
    assert train.features == mirage_features()
    assert count_rows(dataset_dict)["train"] == {"denoise": 3, "derain": 2, "dehaze": 2, "deblur": 2, "lowlight": 2}
    rows = {(r["degradation"], r["id"]): r for r in train}
    # rain-N <-> norain-N; hazy ID_A_B <-> original/ID; clean denoising rows keep input == target
    assert np.array_equal(np.asarray(rows[("rain", "rain-2")]["target"]), load_rgb(root / "Derain/gt/norain-2.png"))
    assert np.array_equal(np.asarray(rows[("haze", "0025_0.9_0.08")]["target"]), load_rgb(root / "Dehaze/original/0025.jpg"))
    clean = rows[("noise", "00001")]
    assert np.array_equal(np.asarray(clean["input"]), np.asarray(clean["target"]))
    assert np.array_equal(np.asarray(clean["target"]), load_rgb(root / "Denoise/00001.bmp"))  # BMP stored losslessly
    assert rows[("blur", "1")]["source"] == "GoPro" and rows[("low", "2")]["task"] == TASK_NAMES.index("lowlight")


def test_train_list_files_select_and_report(tmp_path):
    root = make_train_layout(tmp_path / "train")
    (root / "Denoise" / "denoise.txt").write_text("00001.bmp\na1.jpg\n")
    dataset_dict = build_dataset_dict("train", root, cache_dir=tmp_path / "cache")
    assert count_rows(dataset_dict)["train"]["denoise"] == 2
    (root / "Denoise" / "denoise.txt").write_text("00001.bmp\nmissing.bmp\n")
    with pytest.raises(MirageError, match="missing.bmp is listed"):
        build_dataset_dict("train", root, cache_dir=tmp_path / "cache")


def test_test_layout(built):
    root, dataset_dict = built["test"]
    assert list(dataset_dict) == ["bsd68", "rain100l", "sots", "gopro", "lol"]
    bsd68 = dataset_dict["bsd68"]
    assert sorted(bsd68["degradation"]) == ["noise_15"] * 2 + ["noise_25"] * 2 + ["noise_50"] * 2
    rain = dataset_dict["rain100l"][0]
    assert (rain["id"], rain["source"]) == ("rain-001", "Rain100L")
    assert np.array_equal(np.asarray(rain["target"]), load_rgb(root / "derain/Rain100L/target/norain-001.png"))
    sots = dataset_dict["sots"][0]
    assert np.array_equal(np.asarray(sots["target"]), load_rgb(root / "dehaze/target/0001.png"))


def test_noisy_test_rows_are_the_official_recipe_and_reproducible(built, tmp_path):
    root, dataset_dict = built["test"]
    for row in dataset_dict["bsd68"]:
        sigma = int(row["degradation"].split("_")[1])
        clean = load_rgb(root / "denoise/bsd68" / f"{row['id']}.png")
        expected = add_gaussian_noise(clean, sigma, noise_rng(0, sigma, "BSD68", f"{row['id']}.png"))
        assert np.array_equal(np.asarray(row["input"]), expected)
        assert np.array_equal(np.asarray(row["target"]), clean)
    # the noise depends on the file name, not on which other files are there
    solo = tmp_path / "solo"
    write_image(solo / "denoise/bsd68/test001.png", 101, size=(33, 35))
    alone = build_dataset_dict("test", solo, cache_dir=tmp_path / "cache")["bsd68"]
    original = {(r["id"], r["degradation"]): np.asarray(r["input"]) for r in dataset_dict["bsd68"]}
    for row in alone:
        assert np.array_equal(np.asarray(row["input"]), original[(row["id"], row["degradation"])])
    other_seed = build_dataset_dict("test", solo, seed=1, cache_dir=tmp_path / "cache")["bsd68"]
    assert not np.array_equal(np.asarray(other_seed[0]["input"]), np.asarray(alone[0]["input"]))


def test_gaussian_noise_clips_and_truncates():
    class FixedNormal:
        def standard_normal(self, shape):
            return np.array([0.9 / 15, 10.0, -10.0, 0.0]).reshape(shape)

    clean = np.array([10, 250, 5, 7], dtype=np.uint8).reshape(1, 4, 1)
    noisy = add_gaussian_noise(clean, 15, FixedNormal())
    assert noisy.dtype == np.uint8
    assert noisy.flatten().tolist() == [10, 255, 0, 7]  # 10.9 truncates to 10; clipped at both ends


def test_cdd11_layout(built):
    _, dataset_dict = built["cdd11"]
    assert list(dataset_dict) == ["train", "test"]
    test = dataset_dict["test"]
    assert sorted(set(test["degradation"])) == ["haze_rain", "low"]
    assert set(test["task"]) == {TASK_NAMES.index("composite")} and set(test["source"]) == {"CDD-11"}


def test_bad_layout_lists_every_problem(tmp_path):
    root = make_test_layout(tmp_path / "test")
    write_image(root / "derain/Rain100L/input/rain-009.png", 1)  # no norain-009.png
    write_image(root / "deblur/gopro/target/orphan.png", 2)  # no input
    write_corrupt(root / "enhance/lol/input/2.png")
    write_image(root / "enhance/lol/target/2.png", 3)
    write_image(root / "dehaze/input/0002_0.8_0.2.jpg", 4)
    write_image(root / "dehaze/target/0002.png", 5, size=(30, 20))  # size mismatch
    with pytest.raises(MirageError) as error:
        build_dataset_dict("test", root, cache_dir=tmp_path / "cache")
    message = str(error.value)
    assert message.startswith("4 problem(s)")
    for fragment in ("rain-009.png", "orphan.png", "unreadable image", "lol/input/2.png", "size mismatch"):
        assert fragment in message


def test_cli_build_good_and_bad(tmp_path, capsys):
    root = make_cdd11_layout(tmp_path / "cdd11")
    out = tmp_path / "built"
    assert main(["data", "build", "cdd11", str(root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "test: 4 rows (composite 4)" in printed
    assert load_built_dataset(out)["train"].num_rows == 4
    # an existing output is never overwritten
    assert main(["data", "build", "cdd11", str(root), "--out", str(out)]) == 1
    assert "not empty" in capsys.readouterr().err
    write_image(root / "test/low/3.png", 7)  # unpaired: no clear/3.png
    write_corrupt(root / "test/clear/9.png")  # unpaired too
    write_corrupt(root / "test/haze_rain/2.png")
    assert main(["data", "build", "cdd11", str(root), "--out", str(tmp_path / "bad")]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("mirage data: error: 3 problem(s)") and "low/3.png" in err and "clear/9.png" in err
    assert "unreadable image" in err and "haze_rain/2.png" in err
    assert not (tmp_path / "bad").exists()
    assert main(["data", "build", "test", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 1


def test_save_load_and_stream(built, tmp_path):
    _, dataset_dict = built["test"]
    out = save_dataset_dict(dataset_dict, tmp_path / "saved")
    loaded = load_built_dataset(out)
    assert loaded["sots"][0]["id"] == dataset_dict["sots"][0]["id"]
    streamed = load_built_dataset(out, streaming=True, split="bsd68")
    first = next(iter(streamed))
    assert isinstance(first["input"], Image.Image) and first["degradation"] == dataset_dict["bsd68"][0]["degradation"]
    assert np.array_equal(np.asarray(first["input"]), np.asarray(dataset_dict["bsd68"][0]["input"]))
    patches = streamed.map(PairedTrainTransform(patch_size=16, seed=0), remove_columns=["input", "target"])
    patch = next(iter(patches))
    assert tuple(torch.as_tensor(patch["pixel_values"]).shape) == (3, 16, 16)
    with pytest.raises(MirageError, match="not empty"):
        save_dataset_dict(dataset_dict, out)


def test_dihedral_modes_follow_the_official_numbering():
    image = np.arange(2 * 3 * 1).reshape(2, 3, 1)
    assert np.array_equal(dihedral(image, 0), image)
    assert np.array_equal(dihedral(image, 1), np.flipud(image))
    assert np.array_equal(dihedral(image, 3), np.flipud(np.rot90(image)))
    assert np.array_equal(dihedral(image, 6), np.rot90(image, k=3))
    outputs = {dihedral(image, mode).tobytes() + bytes(dihedral(image, mode).shape) for mode in range(8)}
    assert len(outputs) == 8


def _pair_dataset(size=(40, 36)):
    from datasets import Dataset

    target = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    rows = {
        "input": [Image.fromarray(255 - target), Image.fromarray(target)],
        "target": [Image.fromarray(target), Image.fromarray(target)],
        "task": [1, 0],
        "degradation": ["rain", "noise_50"],
        "source": ["x", "x"],
        "id": ["a", "b"],
    }
    return Dataset.from_dict(rows, features=mirage_features())


def test_paired_transform_same_crop_and_flip_and_noise():
    dataset = _pair_dataset().with_transform(PairedTrainTransform(patch_size=16, seed=0))
    batch = dataset[:2]
    assert batch["pixel_values"][0].shape == (3, 16, 16)
    # row 0: input = 255 - target, so any mismatch in crop or flip shows
    assert torch.allclose(batch["pixel_values"][0], 1 - batch["labels"][0])
    # row 1: input = clean patch + σ=50 noise
    difference = (batch["pixel_values"][1] - batch["labels"][1]) * 255
    assert difference.abs().max() > 20 and difference.std() > 20
    # the 32x32 multiple-of-16 crop holds the patch; never the identity transform over many draws
    transform = PairedTrainTransform(patch_size=32, seed=1)
    source = np.asarray(_pair_dataset()[0]["target"])[2:34, 4:36]
    for _ in range(30):
        _, labels = transform.transform_pair(Image.fromarray(255 - source), Image.fromarray(source), "rain")
        assert not np.array_equal((labels.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), source)
    # a single row (streaming map) gives single tensors
    single = PairedTrainTransform(patch_size=16, seed=0)(_pair_dataset()[0])
    assert single["pixel_values"].shape == (3, 16, 16)


def test_paired_transform_small_images():
    small = _pair_dataset(size=(20, 18))[0]
    with pytest.raises(MirageError, match="smaller than the 32 patch"):
        PairedTrainTransform(patch_size=32)(small)
    padded = PairedTrainTransform(patch_size=32, pad_small=True)(small)
    assert padded["labels"].shape == (3, 32, 32)


def test_training_mixture_repeats_and_sigmas(built):
    _, dataset_dict = built["train"]
    mixed = training_mixture(dataset_dict, seed=0)
    # denoise 3 images x 3 copies x 3 σ, derain 2 x 120, dehaze 2 x 1, deblur 2 x 5, lowlight 2 x 20
    assert mixed.num_rows == 27 + 240 + 2 + 10 + 40
    degradations = mixed["degradation"]
    assert all(degradations.count(f"noise_{s}") == 9 for s in (15, 25, 50))
    assert degradations.count("rain") == 240 and "noise" not in degradations
    assert training_mixture(dataset_dict, seed=0)["id"] == mixed["id"]
    assert training_mixture(dataset_dict, seed=1)["id"] != mixed["id"]
    batch = mixed.with_transform(PairedTrainTransform(patch_size=16, seed=0))[:4]
    assert torch.stack(batch["pixel_values"]).shape == (4, 3, 16, 16)
    probabilities = streaming_mixture_probabilities({"denoise": 3, "derain": 2, "dehaze": 2})
    assert probabilities["derain"] == pytest.approx(240 / (27 + 240 + 2))


def test_cli_synth(tmp_path, capsys):
    pytest.importorskip("mirage_hf.degradations")
    clean = tmp_path / "clean"
    for i in range(2):
        write_image(clean / f"{i}.png", i)
    out = tmp_path / "synth"
    assert main(["data", "synth", str(clean), "--out", str(out), "--kinds", "noise_25", "haze", "--seed", "1"]) == 0
    assert "train: 4 rows (dehaze 2, denoise 2)" in capsys.readouterr().out
    train = load_built_dataset(out, split="train")
    assert train.features == mirage_features() and sorted(set(train["degradation"])) == ["haze", "noise_25"]
    assert main(["data", "synth", str(tmp_path / "missing"), "--out", str(tmp_path / "s2")]) == 1
