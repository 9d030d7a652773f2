"""Converted weights reproduce the official implementation (fixture made by tests/fixtures/make_official_parity.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from parity_utils import seeded_official_state_dict
from safetensors import safe_open

from mirage_hf import MirageConfig, MirageForImageRestoration
from mirage_hf.convert import convert_state_dict

FIXTURE = Path(__file__).parent / "fixtures" / "official_parity.safetensors"


def load_fixture():
    with safe_open(FIXTURE, framework="pt") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}, handle.metadata()


@pytest.fixture(scope="module")
def fixture():
    return load_fixture()


def official_weights(metadata, variant):
    keys_and_shapes = json.loads(metadata[f"{variant}/keys"])
    return seeded_official_state_dict(keys_and_shapes, int(metadata[f"{variant}/seed"]))


@pytest.mark.parametrize("variant", ["tiny", "small"])
def test_converted_model_matches_official_outputs(fixture, variant):
    tensors, metadata = fixture
    config = MirageConfig.tiny() if variant == "tiny" else MirageConfig.small()
    model = MirageForImageRestoration(config).eval()
    model.load_state_dict(convert_state_dict(official_weights(metadata, variant)), strict=True)
    with torch.no_grad():
        for size in ("64x64", "72x40"):
            expected = tensors[f"{variant}/{size}/output"]
            output = model(tensors[f"{variant}/{size}/input"]).reconstruction
            assert output.shape == expected.shape
            assert (output - expected).abs().max().item() < 1e-5, size
        batch = tensors[f"{variant}/batch2/input"]
        outputs = model(batch, labels=batch)
        expected_loss = tensors[f"{variant}/batch2/contrastive_loss"][0]
        assert torch.allclose(outputs.contrastive_loss, expected_loss, atol=1e-6)
        assert (outputs.reconstruction - tensors[f"{variant}/batch2/output"]).abs().max().item() < 1e-5


def test_convert_cli_from_lightning_checkpoint(fixture, tmp_path):
    from mirage_hf.cli import main

    tensors, metadata = fixture
    weights = {f"net.{key}": value for key, value in official_weights(metadata, "tiny").items()}
    checkpoint = tmp_path / "epoch=129.ckpt"
    torch.save({"epoch": 129, "state_dict": weights}, checkpoint)
    out_dir = tmp_path / "converted"
    assert main(["convert", str(checkpoint), str(out_dir), "--variant", "tiny"]) == 0
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= {p.name for p in out_dir.iterdir()}
    model = MirageForImageRestoration.from_pretrained(out_dir).eval()
    with torch.no_grad():
        output = model(tensors["tiny/64x64/input"]).reconstruction
    assert (output - tensors["tiny/64x64/output"]).abs().max().item() < 1e-5


def test_convert_refuses_wrong_variant_and_lists_keys(fixture, tmp_path, capsys):
    from mirage_hf.cli import main

    _, metadata = fixture
    checkpoint = tmp_path / "tiny.pth"
    torch.save(official_weights(metadata, "tiny"), checkpoint)
    out_dir = tmp_path / "out"
    assert main(["convert", str(checkpoint), str(out_dir), "--variant", "small"]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "shape mismatches" in error[0] and "try --variant tiny" in error[0]
    assert not out_dir.exists()

    partial = official_weights(metadata, "tiny")
    partial.pop("output.weight")
    partial["extra.weight"] = torch.zeros(1)
    torch.save(partial, checkpoint)
    assert main(["convert", str(checkpoint), str(out_dir), "--variant", "tiny"]) == 1
    error = capsys.readouterr().err
    assert "1 missing keys: output.weight" in error and "1 unexpected keys: extra.weight" in error


class ArbitraryObject:
    pass


def test_convert_refuses_pickled_code(tmp_path, capsys):
    from mirage_hf.cli import main

    checkpoint = tmp_path / "evil.ckpt"
    torch.save({"state_dict": ArbitraryObject()}, checkpoint)  # unpickling it would import and build a class
    assert main(["convert", str(checkpoint), str(tmp_path / "out"), "--variant", "tiny"]) == 1
    assert "weights-only" in capsys.readouterr().err


def test_convert_missing_file(tmp_path, capsys):
    from mirage_hf.cli import main

    assert main(["convert", str(tmp_path / "nope.ckpt"), str(tmp_path / "out")]) == 1
    assert "no such checkpoint" in capsys.readouterr().err
