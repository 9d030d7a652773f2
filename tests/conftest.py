"""Shared test setup: offline Hugging Face flags, few threads, and tiny models/images made on the spot."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# The CPU kernels are compiled once per test session, into a fresh folder rather than the user's cache.
if "MIRAGE_KERNEL_CACHE" not in os.environ:
    os.environ["MIRAGE_KERNEL_CACHE"] = tempfile.mkdtemp(prefix="mirage-kernels-")
    atexit.register(shutil.rmtree, os.environ["MIRAGE_KERNEL_CACHE"], ignore_errors=True)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


def tiny_config(**overrides):
    from mirage_hf import MirageConfig

    values = dict(embed_dim=6, depths=[1, 1, 1, 1], num_refinement_blocks=1, num_heads=[1, 1, 1, 1])
    values.update(overrides)
    return MirageConfig(**values)


@pytest.fixture
def tiny_model():
    from mirage_hf import MirageForImageRestoration

    torch.manual_seed(0)
    return MirageForImageRestoration(tiny_config()).eval()


def save_tiny_model(path):
    """A tiny random model (seed 0) with its processor, saved as a from_pretrained folder at `path`."""
    from mirage_hf import MirageForImageRestoration, MirageImageProcessor

    torch.manual_seed(0)
    MirageForImageRestoration(tiny_config()).save_pretrained(path)
    MirageImageProcessor().save_pretrained(path)
    return path


@pytest.fixture
def tiny_model_dir(tmp_path):
    return save_tiny_model(tmp_path / "tiny-model")


@pytest.fixture(scope="module")
def module_tiny_model_dir(tmp_path_factory):
    """Like `tiny_model_dir`, shared by the tests of one module (the Space tests launch one app on it)."""
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny-model")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def random_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
