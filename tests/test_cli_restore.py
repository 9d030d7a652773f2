"""`mirage restore` on good and bad files: names and formats kept, inputs never overwritten, one line per error."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_rgb
from PIL import Image

from mirage_hf.cli import main


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    Image.fromarray(random_rgb(20, 30, 1)).save(folder / "a.png")
    Image.fromarray(random_rgb(17, 11, 2)).save(folder / "nested" / "b.jpg", quality=90)
    rgba = np.concatenate([random_rgb(12, 12, 3), np.full((12, 12, 1), 128, np.uint8)], axis=-1)
    Image.fromarray(rgba).save(folder / "c.png")  # 4 channels -> RGBA
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    return folder


def test_restore_folder_keeps_names_formats_and_reports_bad_files(photos, tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "out"
    before = {p: p.read_bytes() for p in photos.rglob("*") if p.is_file()}
    code = main(["restore", str(photos), "-o", str(out), "--model", str(tiny_model_dir), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 1  # broken.png failed
    errors = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "broken.png" in errors[0] and "Traceback" not in captured.err
    assert "3 restored, 1 failed, 0 skipped" in captured.out

    with Image.open(out / "a.png") as a, Image.open(out / "nested" / "b.jpg") as b, Image.open(out / "c.png") as c:
        assert (a.format, a.size, a.mode) == ("PNG", (30, 20), "RGB")
        assert (b.format, b.size) == ("JPEG", (11, 17))
        assert c.mode == "RGBA" and np.all(np.asarray(c)[..., 3] == 128)  # alpha carried over
    assert not (out / "notes.txt").exists() and not (out / "broken.png").exists()
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]  # no temp files left behind
    assert before == {p: p.read_bytes() for p in photos.rglob("*") if p.is_file()}  # inputs untouched


def test_restore_skips_existing_outputs_unless_overwrite(photos, tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"keep me")
    args = ["restore", str(photos / "a.png"), "-o", str(out), "--model", str(tiny_model_dir)]
    assert main(args) == 0
    assert (out / "a.png").read_bytes() == b"keep me"
    assert "0 restored, 0 failed, 1 skipped" in capsys.readouterr().out
    assert main(args + ["--overwrite"]) == 0
    with Image.open(out / "a.png") as restored:
        assert restored.size == (30, 20)


def test_restore_never_overwrites_an_input(photos, tiny_model_dir, capsys):
    original = (photos / "a.png").read_bytes()
    code = main(["restore", str(photos / "a.png"), "-o", str(photos), "--model", str(tiny_model_dir), "--overwrite"])
    assert code == 1
    assert "would overwrite an input" in capsys.readouterr().err
    assert (photos / "a.png").read_bytes() == original


def test_restore_tiled_and_dry_run(photos, tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "out"
    assert main(["restore", str(photos / "a.png"), "-o", str(out), "--dry-run"]) == 0
    assert "a.png ->" in capsys.readouterr().out and not out.exists()
    code = main(["restore", str(photos / "a.png"), "-o", str(out), "--model", str(tiny_model_dir),
                 "--tile", "16", "--tile-overlap", "4"])
    assert code == 0
    with Image.open(out / "a.png") as restored:
        assert restored.size == (30, 20)


@pytest.mark.parametrize(
    "args, message",
    [
        (["restore", "missing.png", "-o", "out"], "no such file or folder"),
        (["restore", "{photo}", "-o", "{out}", "--model", "{missing_model}"], "not a MIRAGE model folder"),
        (["restore", "{photo}", "-o", "{out}", "--tile", "8", "--tile-overlap", "8"], "--tile"),
        (["restore", "{photo}", "-o", "{out}", "--device", "no-such-device"], "device 'no-such-device' is not usable"),
        (["restore", "{photo}", "-o", "{out}", "--device", "meta", "--precision", "bf16"], "--precision bf16 is not available on meta"),
    ],
)
def test_restore_bad_arguments_give_one_line(args, message, photos, tmp_path, capsys):
    (tmp_path / "empty-model").mkdir()
    values = {"photo": str(photos / "a.png"), "out": str(tmp_path / "out"), "missing_model": str(tmp_path / "empty-model")}
    code = main([arg.format(**values) for arg in args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and message in err[0]


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert "restore" in help_text and "convert" in help_text


def test_restore_with_bf16_autocast_is_close_to_fp32(photos, tmp_path, tiny_model_dir, capsys):
    outputs = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        assert main(["restore", str(photos / "a.png"), "-o", str(out), "--model", str(tiny_model_dir),
                     "--device", "cpu", "--precision", precision]) == 0
        with Image.open(out / "a.png") as restored:
            outputs[precision] = np.asarray(restored).astype(int)
    assert "1 restored" in capsys.readouterr().out
    assert np.abs(outputs["bf16"] - outputs["fp32"]).max() <= 8  # 8-bit levels; bf16 keeps 8 significant bits


def test_restore_python_api_autocast(tiny_model_dir):
    import torch

    from mirage_hf.inference import load_model, restore

    model, _ = load_model(str(tiny_model_dir), device="cpu")
    pixel_values = torch.rand(1, 3, 24, 40, generator=torch.Generator().manual_seed(0))
    for tiling in ({}, {"tile_size": 16, "tile_overlap": 4}):
        exact = restore(model, pixel_values, **tiling)
        autocast = restore(model, pixel_values, autocast_dtype=torch.bfloat16, **tiling)
        assert autocast.dtype == torch.float32 and autocast.shape == exact.shape
        assert 0 < (autocast - exact).abs().max() < 0.03  # bf16 ran (not bitwise equal), and stayed close
