"""Convolutions followed by a GELU, a product or a sum, fused where oneDNN does it faster, for CPU inference.

On a few CPU cores the element-wise passes around MIRAGE's convolutions (two exact GELUs over the 4×-wide
feed-forward maps, the gating products, the residual sums) cost as much as the convolutions: each reads and
writes a whole feature map. oneDNN applies the GELU, and a sum into an existing tensor, as post-ops while the
convolution's output is still in cache. PyTorch exposes that as `torch.ops.mkldnn._convolution_pointwise` (the op
inductor's CPU backend emits); no public API fuses a convolution with an activation, so this module wraps it.
Products and sums into a new tensor are the convolution followed by an in-place op, measured faster than oneDNN's
binary post-op there. Every function falls back to the plain ops wherever the fused kernel does not apply:
autograd, other devices or dtypes, autocast, export.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import cpu_kernels

_pointwise_conv = getattr(getattr(torch.ops, "mkldnn", None), "_convolution_pointwise", None)
_pointwise_conv_ = getattr(getattr(torch.ops, "mkldnn", None), "_convolution_pointwise_", None)  # in place


def fusable(*tensors: torch.Tensor) -> bool:
    """True when the fused oneDNN kernels can run on these tensors (fp32 on the CPU, no autograd)."""
    return (
        _pointwise_conv is not None
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
        and not torch.is_grad_enabled()
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()
        and not torch.compiler.is_exporting()
        and all(tensor.device.type == "cpu" and tensor.dtype == torch.float32 for tensor in tensors)
    )


def _channels_last(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.contiguous(memory_format=torch.channels_last)


def conv_gelu(
    hidden_states: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, padding: int = 0, groups: int = 1
) -> torch.Tensor:
    """GELU(conv2d(hidden_states, weight, bias)), exact (erf) GELU, stride 1."""
    if not fusable(hidden_states, weight):
        return cpu_kernels.gelu(F.conv2d(hidden_states, weight, bias, padding=padding, groups=groups))
    return _pointwise_conv(
        _channels_last(hidden_states), weight, bias, [padding, padding], [1, 1], [1, 1], groups, "gelu", [], "none"
    )


def conv_mul(
    hidden_states: torch.Tensor,
    other: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    padding: int = 0,
    groups: int = 1,
) -> torch.Tensor:
    """conv2d(hidden_states, weight, bias) * other, stride 1; `other` has the output's shape."""
    return _conv_binary(hidden_states, other, weight, bias, padding, groups, "mul")


def conv_add(
    hidden_states: torch.Tensor,
    other: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    padding: int = 0,
    groups: int = 1,
) -> torch.Tensor:
    """conv2d(hidden_states, weight, bias) + other, stride 1; `other` has the output's shape."""
    return _conv_binary(hidden_states, other, weight, bias, padding, groups, "add")


def conv_add_(
    accumulator: torch.Tensor, hidden_states: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """accumulator += conv2d(hidden_states, weight, bias), 1×1, in place; `accumulator` is a dense channels-last
    tensor (or a band of rows of one) of the output's shape."""
    dense = accumulator.is_contiguous(memory_format=torch.channels_last)
    if _pointwise_conv_ is None or not dense or not fusable(hidden_states, accumulator, weight):
        return accumulator.add_(F.conv2d(hidden_states, weight, bias))
    return _pointwise_conv_.binary(
        accumulator, _channels_last(hidden_states), weight, bias, [0, 0], [1, 1], [1, 1], 1, "add", None, None, [], None
    )


def _conv_binary(hidden_states, other, weight, bias, padding, groups, operation):
    convolved = F.conv2d(hidden_states, weight, bias, padding=padding, groups=groups)
    if not fusable(hidden_states, other, weight):
        return convolved * other if operation == "mul" else convolved + other
    # Without autograd, in place. oneDNN's binary post-op into a new tensor measured slower than this (1.2-1.7× at
    # full resolution; into an existing tensor, as `conv_add_` does, it is the faster one).
    return convolved.mul_(other) if operation == "mul" else convolved.add_(other)
