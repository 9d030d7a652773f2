"""Loading a MIRAGE model by name, path or Hub id, and restoring images with it (whole or tiled)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from .configuration_mirage import MirageConfig
from .errors import MirageError
from .image_processing_mirage import MirageImageProcessor
from .modeling_mirage import MirageForImageRestoration

# Weights that ship inside the package, loadable by name: `load_model("mirage-default")`.
BUNDLED_WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_MODEL_NAME = "mirage-default"


def bundled_model_names() -> list[str]:
    if not BUNDLED_WEIGHTS_DIR.is_dir():
        return []
    return sorted(path.name for path in BUNDLED_WEIGHTS_DIR.iterdir() if (path / "config.json").is_file())


def resolve_model_path(name_or_path: str | None) -> str:
    """A bundled model name (or None for the default), a local folder, or a Hub id (returned unchanged)."""
    name = name_or_path or DEFAULT_MODEL_NAME
    if (BUNDLED_WEIGHTS_DIR / name / "config.json").is_file():
        return str(BUNDLED_WEIGHTS_DIR / name)
    if name_or_path is None:
        raise MirageError(f"the bundled default weights ({DEFAULT_MODEL_NAME}) are missing from this installation")
    path = Path(name)
    if path.exists():
        if not (path / "config.json").is_file():
            raise MirageError(f"{name} is not a MIRAGE model folder (no config.json)")
        return str(path)
    return name


def resolve_device(name: str | None = None) -> torch.device:
    """`None` or "auto": cuda, else mps, else cpu; any other name is checked to be usable here (MirageError if not)."""
    if name in (None, "auto"):
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    try:
        torch.empty(0, device=name)
    except (RuntimeError, AssertionError) as error:  # unknown name, or a build / machine without that device
        raise MirageError(f"device {name!r} is not usable: {str(error).splitlines()[0]}") from None
    return torch.device(name)


def load_model(
    name_or_path: str | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[MirageForImageRestoration, MirageImageProcessor]:
    """Load a model (bundled name, folder or Hub id; None = the bundled default) in eval mode, and its processor."""
    path = resolve_model_path(name_or_path)
    try:
        model = MirageForImageRestoration.from_pretrained(path, dtype=dtype or torch.float32)
    except OSError as error:
        raise MirageError(f"cannot load model {name_or_path!r}: {str(error).splitlines()[0]}") from None
    if not isinstance(model.config, MirageConfig):
        raise MirageError(f"{name_or_path!r} is not a MIRAGE model")
    try:
        processor = MirageImageProcessor.from_pretrained(path)
    except OSError:
        processor = MirageImageProcessor()
    return model.to(device or "cpu").eval(), processor


@torch.no_grad()
def restore(
    model: MirageForImageRestoration,
    pixel_values: torch.Tensor,
    tile_size: int | None = None,
    tile_overlap: int = 32,
    tile_batch_size: int = 4,
    progress: Callable[[int, int], None] | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Restore [B, 3, H, W] images in [0, 1]; returns float32 [B, 3, H, W] clamped to [0, 1] on the input's device.

    With `tile_size`, the image is processed in overlapping tiles of that size (see `mirage_hf.tiling`),
    keeping memory bounded for any photo size; tiles go to the model's device in batches. `autocast_dtype`
    (`torch.bfloat16`) runs the model under `torch.autocast`: on a GPU 1.4-1.9× faster at 1024² (not at 512²) at
    about half the memory, within about 5e-3 relative of fp32 (`benchmarks/README.md`); slow on most CPUs.
    """
    parameter = next(model.parameters())

    def restore_batch(batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(device=parameter.device, dtype=parameter.dtype)
        with torch.autocast(parameter.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            reconstruction = model(pixel_values=batch).reconstruction
        return reconstruction.float().clamp(0.0, 1.0)

    if tile_size is None or (pixel_values.shape[-2] <= tile_size and pixel_values.shape[-1] <= tile_size):
        output = restore_batch(pixel_values).to(pixel_values.device)
        if progress is not None:
            progress(1, 1)
        return output
    from .tiling import restore_tiled

    return restore_tiled(restore_batch, pixel_values, tile_size, tile_overlap, tile_batch_size, progress).clamp(0.0, 1.0)
