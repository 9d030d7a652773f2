"""The core inference path imports none of the optional extras (evaluate ~9 s, gradio ~5 s, datasets, ...)."""

from __future__ import annotations

import subprocess
import sys

OPTIONAL = ("datasets", "evaluate", "gradio", "diffusers", "skimage", "onnxruntime", "tensorboard")


def test_core_inference_imports_no_extras():
    code = (
        "import sys, mirage_hf, mirage_hf.cli\n"
        "from mirage_hf.inference import load_model, restore\n"
        "mirage_hf.cli.build_parser()\n"
        f"print(','.join(m for m in {OPTIONAL!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
