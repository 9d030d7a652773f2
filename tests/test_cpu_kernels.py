"""The hand-written CPU kernels (`mirage_hf.cpu_kernels`) against the straightforward ops, its build cache, and the
oneDNN path the model keeps where the kernel cannot be built."""

from __future__ import annotations

import logging
import subprocess

import pytest
import torch
import torch.nn.functional as F

from conftest import tiny_config
from mirage_hf import MirageForImageRestoration, cpu_kernels


def plain_gated_depthwise(projected, weight, bias, first, last):
    """GELU(x1)·x2 after GELU and the 3×3 depthwise conv, with the straightforward ops."""
    gate, value = F.conv2d(F.gelu(projected), weight, bias, padding=1, groups=weight.shape[0]).chunk(2, dim=1)
    return (F.gelu(gate) * value)[:, :, first:last]


def test_kernel_builds_on_this_machine():
    """CI and the development machines have a C compiler: the fast path must be the one the tests exercise."""
    assert cpu_kernels.available()


@pytest.mark.parametrize("hidden", [5, 8, 20, 48])
@pytest.mark.parametrize("with_bias", [False, True])
def test_gated_depthwise_equals_plain_ops(hidden, with_bias):
    torch.manual_seed(hidden)
    rows, width = 11, 13
    projected = (torch.randn(1, 2 * hidden, rows, width) * 3).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(2 * hidden, 1, 3, 3) / 3
    bias = torch.randn(2 * hidden) if with_bias else None
    with torch.inference_mode():
        for first, last in [(0, rows), (1, rows - 1), (0, 1), (rows - 1, rows), (3, 8)]:
            expected = plain_gated_depthwise(projected, weight, bias, first, last)
            result = cpu_kernels.gated_depthwise(projected, weight, bias, first, last)
            assert result.shape == expected.shape
            assert result.is_contiguous(memory_format=torch.channels_last)
            assert (result - expected).abs().max().item() < 1e-5 * max(1.0, expected.abs().max().item())


def test_gelu_accuracy_over_the_whole_range():
    """A centre-tap-only weight turns the kernel into GELU(GELU(x1))·GELU(x2): its erf against torch's over
    [-60, 60], where fp32 GELU runs from exactly 0 to the identity."""
    hidden = 8
    values = torch.linspace(-60, 60, 2 * hidden * 7 * 301)
    projected = values.reshape(1, 7, 301, 2 * hidden).permute(0, 3, 1, 2)  # channels-last view
    weight = torch.zeros(2 * hidden, 1, 3, 3)
    weight[:, 0, 1, 1] = 1.0
    with torch.inference_mode():
        result = cpu_kernels.gated_depthwise(projected, weight, None, 0, 7)
        gate, value = F.gelu(projected).chunk(2, dim=1)
        expected = F.gelu(gate) * value
    relative = (result - expected).abs() / expected.abs().clamp_min(1.0)
    assert relative.max().item() < 1e-6


def test_thread_counts_give_the_same_result():
    torch.manual_seed(0)
    projected = torch.randn(1, 24, 9, 17).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(24, 1, 3, 3)
    threads = torch.get_num_threads()
    try:
        results = []
        for count in (1, 2, 3):
            torch.set_num_threads(count)
            with torch.inference_mode():
                results.append(cpu_kernels.gated_depthwise(projected, weight, None, 0, 9))
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(results[0], other) for other in results[1:])


@pytest.mark.parametrize("channels", [3, 8, 10, 20])
def test_cross_gate_equals_plain_ops(channels):
    torch.manual_seed(channels)
    attention, gated, mlp = (torch.randn(2, channels, 7, 9) * 30 for _ in range(3))  # sigmoid saturates too
    alphas = (0.75, -1.5, 2.0)
    expected = torch.cat(
        (
            attention + alphas[0] * torch.sigmoid(gated + mlp),
            gated + alphas[1] * torch.sigmoid(attention + mlp),
            mlp + alphas[2] * torch.sigmoid(attention + gated),
        ),
        dim=1,
    )
    with torch.inference_mode():
        result = cpu_kernels.cross_gate((attention, gated, mlp), alphas)
    assert result.is_contiguous(memory_format=torch.channels_last)
    relative = (result - expected).abs() / expected.abs().clamp_min(1.0)
    assert relative.max().item() < 1e-6


@pytest.mark.parametrize("layout", ["channels_last", "contiguous", "channel_slice", "flat"])
def test_gelu_forward_and_backward_equal_pytorch(layout):
    torch.manual_seed(0)
    base = torch.randn(2, 16, 5, 7) * 6
    base[0, 0, 0, :4] = torch.tensor([-60.0, 60.0, 0.0, -0.0])
    if layout == "channels_last":
        base = base.contiguous(memory_format=torch.channels_last)
    elif layout == "flat":
        base = base.flatten()[:1003]  # a tail of fewer than 8 elements

    def loss_and_grad(function):
        source = base.clone().requires_grad_()
        inputs = source.chunk(2, dim=1)[0] if layout == "channel_slice" else source  # strided: copied densely
        output = function(inputs)
        weights = torch.linspace(-2, 2, output.numel()).reshape(output.shape)
        (output * weights).sum().backward()
        return output.detach(), source.grad

    output, grad = loss_and_grad(cpu_kernels.gelu)
    expected_output, expected_grad = loss_and_grad(F.gelu)
    assert ((output - expected_output).abs() / expected_output.abs().clamp_min(1.0)).max().item() < 1e-6
    assert ((grad - expected_grad).abs() / expected_grad.abs().clamp_min(1.0)).max().item() < 1e-6
    if layout != "channel_slice":  # the layout of the input is kept
        assert output.stride() == expected_output.stride()


def test_gelu_falls_back_to_pytorch_where_the_kernel_does_not_apply():
    values = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
    assert cpu_kernels.gelu(values).grad_fn.name() == "GeluBackward0"
    with torch.autocast("cpu", dtype=torch.bfloat16):
        convolved = F.conv2d(torch.randn(1, 3, 4, 4), torch.randn(4, 3, 1, 1, requires_grad=True))
        assert cpu_kernels.gelu(convolved).grad_fn.name() == "GeluBackward0"
    assert cpu_kernels.gelu(torch.randn(3, requires_grad=True)).grad_fn.name() == "_GELUBackward"


def test_bad_arguments_are_refused():
    projected = torch.randn(1, 8, 4, 4)
    with pytest.raises(ValueError, match="bad shapes"):
        cpu_kernels.gated_depthwise(projected, torch.randn(8, 1, 5, 5), None, 0, 4)
    with pytest.raises(ValueError, match="bad shapes"):
        cpu_kernels.gated_depthwise(projected, torch.randn(8, 1, 3, 3), None, 2, 6)
    with pytest.raises(ValueError, match="fp32"):
        cpu_kernels.gated_depthwise(projected.double(), torch.randn(8, 1, 3, 3).double(), None, 0, 4)
    with pytest.raises(ValueError, match="one shape"):
        cpu_kernels.cross_gate((projected, projected, projected[:, :4]), (1.0, 1.0, 1.0))


def test_build_is_cached_and_reused(tmp_path, monkeypatch):
    cpu_kernels.build_library(tmp_path)
    built = list(tmp_path.glob("*.so"))
    assert len(built) == 1 and not [path for path in tmp_path.iterdir() if path.is_dir()]  # no build leftovers
    commands = []
    real_run = subprocess.run

    def recording_run(command, *args, **kwargs):
        commands.append(command)
        return real_run(command, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", recording_run)
    cpu_kernels.build_library(tmp_path)
    assert not any("-shared" in command for command in commands)  # loaded from the cache, not compiled again
    assert list(tmp_path.glob("*.so")) == built


def test_missing_compiler_falls_back_to_onednn(tmp_path, monkeypatch, caplog):
    with pytest.raises(RuntimeError, match="no C compiler"):
        cpu_kernels.build_library(tmp_path, compiler="no-such-compiler")
    monkeypatch.setenv("CC", "no-such-compiler")
    monkeypatch.setenv("MIRAGE_KERNEL_CACHE", str(tmp_path))
    cpu_kernels._library.cache_clear()
    try:
        with caplog.at_level(logging.INFO, logger="mirage_hf.cpu_kernels"):
            assert not cpu_kernels.available()
        assert "no C compiler" in caplog.text
    finally:
        monkeypatch.undo()
        cpu_kernels._library.cache_clear()
    assert cpu_kernels.available()


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("MIRAGE_CPU_KERNELS", "0")
    cpu_kernels._library.cache_clear()
    try:
        assert not cpu_kernels.available()
    finally:
        monkeypatch.undo()
        cpu_kernels._library.cache_clear()


def test_model_output_is_the_same_with_and_without_the_kernel(monkeypatch):
    torch.manual_seed(0)
    model = MirageForImageRestoration(tiny_config(embed_dim=12)).eval()
    pixel_values = torch.rand(1, 3, 37, 29)
    plain = model(pixel_values).reconstruction.detach()  # autograd on: the straightforward path
    with torch.inference_mode():
        with_kernel = model(pixel_values).reconstruction
        monkeypatch.setattr(cpu_kernels, "available", lambda: False)
        with_onednn = model(pixel_values).reconstruction
    assert (with_kernel - plain).abs().max().item() < 1e-5
    assert (with_onednn - plain).abs().max().item() < 1e-5


def test_kernel_sources_are_package_data():
    """A wheel must carry every file the build reads (sources and headers), or installed copies fall back silently."""
    import fnmatch
    import tomllib
    from pathlib import Path

    package = Path(cpu_kernels.__file__).parent
    patterns = tomllib.loads((package.parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["mirage_hf"]
    for path in (*cpu_kernels.SOURCES, *cpu_kernels.HEADERS):
        relative = path.relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative
    assert sorted(path.name for path in cpu_kernels.KERNELS.iterdir() if path.suffix in {".c", ".h"}) == sorted(
        path.name for path in (*cpu_kernels.SOURCES, *cpu_kernels.HEADERS)
    )
