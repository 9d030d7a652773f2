"""The scripts in benchmarks/ run end to end on the CPU, at toy sizes (their timings are never asserted):
benchmark.py writes its table and JSON, device_check.py passes, profile_model.py prints its operator table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def run_script(name: str, *arguments: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *arguments], capture_output=True, text=True,
                          timeout=600, cwd=ROOT, env=environment)


def test_benchmark_writes_table_and_json(tmp_path):
    output = tmp_path / "result.json"
    completed = run_script(
        "benchmark.py", "--variants", "tiny", "--sizes", "24", "--tiled", "", "--train-sizes", "16", "--train-batch", "2",
        "--train-checkpointing", "all", "--repeats", "1", "--train-repeats", "1", "--threads", "2", "--output", str(output),
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(output.read_text())
    assert report["complete"] and report["machine"]
    rows = {(row["label"], row["kind"]): row for row in report["rows"]}
    assert set(rows) == {("ours", "infer"), ("ours", "train"), ("ours+checkpointing", "train")}
    for row in rows.values():
        assert "error" not in row, row["error"]
        assert row["latency_s"] > 0 and row["peak_memory_mb"] > 0 and row["first_call_s"] > 0 and row["megapixels_per_s"] > 0
    assert "| ours tiny | infer | 24×24 | cpu | fp32 |" in completed.stdout
    assert "| ours+checkpointing tiny | train step (batch 2, AdamW) | 16×16 |" in completed.stdout


def test_device_check_passes_on_the_cpu():
    completed = run_script("device_check.py", "--device", "cpu", "--variants", "tiny")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "all passed" in completed.stdout
    assert completed.stdout.count("| ok |") == 6  # two inference inputs, loss and gradients with and without checkpointing


def test_profile_model_prints_the_top_operators():
    completed = run_script("profile_model.py", "--size", "32", "--repeats", "1", "--rows", "5")
    assert completed.returncode == 0, completed.stderr
    assert "tiny forward 1×3×32², cpu fp32" in completed.stdout
    assert "Self CPU" in completed.stdout


def test_layer_norm_cuda_formulations_equal_mirage_layer_norm():
    """The alternatives layer_norm_cuda.py times on a GPU compute the same LayerNorm (checked here on the CPU)."""
    import importlib.util

    import torch

    from mirage_hf.modeling_mirage import MirageLayerNorm

    spec = importlib.util.spec_from_file_location("layer_norm_cuda", ROOT / "benchmarks" / "layer_norm_cuda.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.__doc__.startswith("Channel LayerNorm on CUDA")
    torch.manual_seed(0)
    layer_norm = MirageLayerNorm(24, "with_bias")
    with torch.no_grad():
        layer_norm.weight.normal_()
        layer_norm.bias.normal_()
        hidden_states = torch.randn(2, 24, 16, 20).contiguous(memory_format=torch.channels_last)
        reference = layer_norm(hidden_states)
        for function in (script.var_mean_layer_norm, script.var_mean_layer_norm_fp32):
            assert (function(hidden_states, layer_norm.weight, layer_norm.bias) - reference).abs().max() < 1e-5
