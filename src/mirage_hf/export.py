"""Export the inference graph of a MIRAGE model: `torch.export` and ONNX, with dynamic height and width.

The exported graph maps pixel values [B, 3, H, W] in [0, 1] to the (unclamped) reconstruction of the same size;
H and W may be anything from 9 pixels up (the model pads to a multiple of 8 inside, by reflection; an 8-pixel
side would leave a 1-pixel latent, which the traced graph does not cover).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .errors import MirageError
from .io_utils import atomic_path

MIN_SIZE = 9  # smallest height or width the exported graph accepts


class ReconstructionOnly(nn.Module):
    """pixel_values -> reconstruction: the tensor-only signature exporters want."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values, return_dict=True).reconstruction


def dynamic_shapes() -> dict:
    """Height and width dynamic (batch 1); the exporter derives their valid range from the graph's guards."""
    return {"pixel_values": {2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO}}


def example_input(model: nn.Module) -> torch.Tensor:
    parameter = next(model.parameters())
    return torch.rand(1, 3, 61, 45, device=parameter.device, dtype=parameter.dtype)


def export_program(model: nn.Module) -> torch.export.ExportedProgram:
    """`torch.export` of the model in eval mode, batch, height and width dynamic."""
    module = ReconstructionOnly(model.eval()).eval()
    with torch.no_grad():
        return torch.export.export(module, (example_input(model),), dynamic_shapes=dynamic_shapes())


def export_onnx(model: nn.Module, path: str | Path, opset: int = 18) -> Path:
    """Write `model` as ONNX (input `pixel_values`, output `reconstruction`, dynamic batch/height/width), atomically."""
    module = ReconstructionOnly(model.eval()).eval()
    path = Path(path)
    with torch.no_grad():
        program = torch.onnx.export(
            module,
            (example_input(model),),
            dynamo=True,
            dynamic_shapes=dynamic_shapes(),
            input_names=["pixel_values"],
            output_names=["reconstruction"],
            opset_version=opset,
            external_data=False,
            verbose=False,
        )
    with atomic_path(path) as temporary:
        program.save(str(temporary))
    return path


def check_onnx(model: nn.Module, path: str | Path, sizes=((64, 64), (72, 48)), atol: float = 1e-4) -> float:
    """Run the ONNX file with onnxruntime (CPU) on random inputs of each size; raise unless it matches PyTorch
    within `atol`. Returns the largest absolute difference."""
    try:
        import onnxruntime
    except ImportError:
        raise MirageError("checking needs onnxruntime: pip install 'mirage_hf[onnx]'") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for height, width in sizes:
        pixel_values = torch.rand(1, 3, height, width, generator=generator)
        with torch.no_grad():
            expected = model.eval()(pixel_values.to(next(model.parameters()).dtype)).reconstruction.float()
        (actual,) = session.run(None, {"pixel_values": pixel_values.numpy()})
        difference = (torch.from_numpy(actual) - expected).abs().max().item()
        worst = max(worst, difference)
        if not difference <= atol:
            raise MirageError(f"onnxruntime output differs from PyTorch by {difference:.2e} at {height}×{width}")
    return worst


__all__ = ["check_onnx", "export_onnx", "export_program"]
