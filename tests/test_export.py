"""torch.export and ONNX export of the inference graph (dynamic height and width) match eager PyTorch."""

from __future__ import annotations

import pytest
import torch

from mirage_hf.cli import main


@pytest.mark.slow
def test_torch_export_dynamic_sizes(tiny_model):
    from mirage_hf.export import export_program

    program = export_program(tiny_model)
    generator = torch.Generator().manual_seed(0)
    for height, width in ((64, 64), (72, 48), (13, 30)):  # unpadded, unpadded, padded
        pixel_values = torch.rand(1, 3, height, width, generator=generator)
        with torch.no_grad():
            expected = tiny_model(pixel_values).reconstruction
        assert (program.module()(pixel_values) - expected).abs().max().item() < 1e-5


@pytest.mark.slow
def test_export_onnx_cli_matches_pytorch(tiny_model, tiny_model_dir, tmp_path, capsys):
    pytest.importorskip("onnxscript")
    onnxruntime = pytest.importorskip("onnxruntime")
    output = tmp_path / "out" / "mirage.onnx"
    assert main(["export-onnx", str(tiny_model_dir), str(output), "--check"]) == 0
    assert "onnxruntime matches PyTorch" in capsys.readouterr().out
    assert sorted(path.name for path in output.parent.iterdir()) == ["mirage.onnx"]  # no temporary left behind

    session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(1)
    for height, width in ((64, 64), (72, 48), (21, 35)):
        pixel_values = torch.rand(1, 3, height, width, generator=generator)
        with torch.no_grad():
            expected = tiny_model(pixel_values).reconstruction
        (actual,) = session.run(None, {"pixel_values": pixel_values.numpy()})
        assert actual.shape == (1, 3, height, width)
        assert (torch.from_numpy(actual) - expected).abs().max().item() < 1e-4


def test_export_onnx_cli_refuses_bad_output(tiny_model_dir, tmp_path, capsys):
    assert main(["export-onnx", str(tiny_model_dir), str(tmp_path / "model.bin")]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "must end in .onnx" in error[0]


def test_export_onnx_cli_missing_model(tmp_path, capsys):
    pytest.importorskip("onnxscript")
    assert main(["export-onnx", str(tmp_path / "no-such-model"), str(tmp_path / "out.onnx")]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "error" in error[0]
    assert not (tmp_path / "out.onnx").exists()
