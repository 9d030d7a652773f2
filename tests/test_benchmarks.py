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
