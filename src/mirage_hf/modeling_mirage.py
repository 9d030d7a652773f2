"""MIRAGE: all-in-one image restoration with channel-wise functional decomposition and SPD manifold regularisation.

A 4-level U-Net (Restormer / PromptIR layout). Every block is `x + Mixer(LN(x))`, then `x + FFN(LN(x))`, where the
mixer splits the channels in three branches -- channel attention, a dynamic gated convolution and a channel MLP --
and lets each branch gate the others before a 1×1 projection. Training adds a contrastive loss between the
covariance (SPD) descriptors of shallow and latent features; that head never runs at inference.

Parameter names follow the official implementation (repository Amazingren/MIRAGE) where they read well;
`mirage_hf.convert` maps the official names onto these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput

from . import cpu_kernels
from .configuration_mirage import MirageConfig
from .cpu_fusion import conv_add, conv_add_, conv_gelu, conv_mul, fusable
from .losses import fourier_l1_loss, info_nce_loss


@dataclass
class ImageRestorationOutput(ModelOutput):
    """
    Output of [`MirageForImageRestoration`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, returned when `labels` are given):
            `l1_loss + fourier_loss + contrastive_loss`.
        reconstruction (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`):
            the restored image, same size as the input (not clamped).
        l1_loss (`torch.FloatTensor` of shape `()`, returned when `labels` are given): mean absolute error.
        fourier_loss (`torch.FloatTensor` of shape `()`, returned when `labels` are given):
            `fourier_loss_weight` × L1 between the real and imaginary parts of `rfft2` of output and labels.
        contrastive_loss (`torch.FloatTensor` of shape `()`, returned when `labels` are given):
            `contrastive_loss_weight` × InfoNCE between the shallow and latent SPD embeddings of each image.
    """

    loss: torch.FloatTensor | None = None
    reconstruction: torch.FloatTensor | None = None
    l1_loss: torch.FloatTensor | None = None
    fourier_loss: torch.FloatTensor | None = None
    contrastive_loss: torch.FloatTensor | None = None


def drop_path(hidden_states: torch.Tensor, drop_prob: float, training: bool) -> torch.Tensor:
    """Stochastic depth per sample, scaled by 1 / keep (timm's DropPath, which cannot be installed here)."""
    if drop_prob == 0.0 or not training:
        return hidden_states
    keep_prob = 1.0 - drop_prob
    shape = (hidden_states.shape[0],) + (1,) * (hidden_states.ndim - 1)
    mask = hidden_states.new_empty(shape).bernoulli_(keep_prob)
    return hidden_states * mask / keep_prob


class MirageDropPath(nn.Module):
    def __init__(self, drop_prob: float):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return drop_path(hidden_states, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class MirageLayerNorm(nn.Module):
    """LayerNorm over the channel axis of a [B, C, H, W] tensor (eps 1e-5).

    `with_bias` is the ordinary LayerNorm; `bias_free` is Restormer's variant: x / sqrt(var + eps) * weight,
    with no mean subtraction. Computed on the [B, H, W, C] view, which is free for channels-last tensors
    (the layout the model runs in) and lets `F.layer_norm` do it in one pass.
    """

    def __init__(self, num_channels: int, layer_norm_type: str):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels)) if layer_norm_type == "with_bias" else None
        self.eps = 1e-5

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        channels_last = hidden_states.permute(0, 2, 3, 1)  # [B, H, W, C]
        if self.bias is None:
            variance = channels_last.var(dim=-1, keepdim=True, unbiased=False)
            normalized = channels_last / torch.sqrt(variance + self.eps) * self.weight
        else:
            normalized = F.layer_norm(channels_last, self.weight.shape, self.weight, self.bias, self.eps)
        return normalized.permute(0, 3, 1, 2)


class MirageChannelAttention(nn.Module):
    """Restormer's MDTA: attention across channels (a C×C map per head), q and k L2-normalised over pixels."""

    def __init__(self, dim: int, num_heads: int, bias: bool):
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, kernel_size=3, padding=1, groups=dim * 3, bias=bias)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        batch_size, channels, height, width = hidden_states.shape
        head_dim = channels // self.num_heads
        qkv = self.qkv_dwconv(self.qkv(hidden_states))  # [B, 3C, H, W], channels-last
        # Pixels as tokens, [B, H*W, 3, heads, C/heads]: a view of a channels-last tensor.
        tokens = qkv.permute(0, 2, 3, 1).reshape(batch_size, height * width, 3, self.num_heads, head_dim)
        query, key, value = (part.transpose(1, 2) for part in tokens.unbind(2))  # [B, heads, H*W, C/heads]
        # normalize(q)ᵀ·normalize(k) = qᵀk / (|q|·|k|): scale the small C×C map instead of the two big tensors.
        # The norms as squares summed over the pixel axis of the token view (vector_norm across that strided axis
        # is about 2× slower at full resolution on the CPU).
        query_key = tokens[:, :, :2]  # [B, H*W, 2, heads, C/heads]
        query_norm, key_norm = (query_key * query_key).sum(dim=1).sqrt().clamp_min(1e-12).unbind(1)  # [B, heads, C/h]
        attention = query.transpose(-2, -1) @ key  # [B, heads, C/heads, C/heads]
        attention = attention / (query_norm.unsqueeze(-1) * key_norm.unsqueeze(-2)) * self.temperature
        attention = attention.softmax(dim=-1)
        output = value @ attention.transpose(-2, -1)  # [B, heads, H*W, C/heads]
        output = output.transpose(1, 2).reshape(batch_size, height, width, channels)
        return output.permute(0, 3, 1, 2)


def per_sample_depthwise_conv(hidden_states: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] convolved channel by channel with each sample's own [B*C, 1, k, k] kernels: one grouped conv
    over B*C groups ("same" padding)."""
    batch_size, channels, height, width = hidden_states.shape
    convolved = F.conv2d(
        hidden_states.reshape(1, batch_size * channels, height, width),
        kernels,
        padding=kernels.shape[-1] // 2,
        groups=batch_size * channels,
    ).reshape(batch_size, channels, height, width)
    return convolved if torch.compiler.is_exporting() else convolved.contiguous(memory_format=torch.channels_last)


class PerSampleDepthwiseConv(torch.autograd.Function):
    """`per_sample_depthwise_conv` with a faster kernel gradient on the CPU: written as a convolution of the padded
    input with the output gradient (one k×k output per group), it runs ~14× faster than the weight gradient
    `convolution_backward` computes for B*C single-channel groups. The input gradient is the transposed conv.
    Used for CPU training only (a k×k output from an H×W kernel was not measured on GPUs)."""

    @staticmethod
    def forward(ctx, hidden_states: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(hidden_states, kernels)
        return per_sample_depthwise_conv(hidden_states, kernels)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        hidden_states, kernels = ctx.saved_tensors
        batch_size, channels, height, width = hidden_states.shape
        groups, padding, dtype = batch_size * channels, kernels.shape[-1] // 2, grad_output.dtype  # dtype: autocast's
        grad_output = grad_output.reshape(1, groups, height, width)
        grad_input = grad_kernels = None
        if ctx.needs_input_grad[0]:
            grad_input = F.conv_transpose2d(grad_output, kernels.to(dtype), padding=padding, groups=groups)
            grad_input = grad_input.reshape(hidden_states.shape).to(hidden_states.dtype)
            grad_input = grad_input.contiguous(memory_format=torch.channels_last)
        if ctx.needs_input_grad[1]:
            padded = F.pad(hidden_states.to(dtype).reshape(1, groups, height, width), (padding,) * 4)
            grad_kernels = F.conv2d(padded, grad_output.reshape(groups, 1, height, width), groups=groups)
            grad_kernels = grad_kernels.reshape(kernels.shape).to(kernels.dtype)
        return grad_input, grad_kernels


class MirageKernelGenerator(nn.Module):
    """Predicts one k×k depthwise kernel per sample and channel from the globally pooled features."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, channels, kernel_size=1, bias=False)
        self.expand = nn.Conv2d(channels, channels * kernel_size * kernel_size, kernel_size=1, bias=False)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        pooled = hidden_states.mean(dim=(2, 3), keepdim=True)  # [B, C, 1, 1]
        return self.expand(F.gelu(self.reduce(pooled)))  # [B, C*k*k, 1, 1]


class MirageGatedConv(nn.Module):
    """The gated CNN branch: BatchNorm, 1×1 expansion into gate / identity / conv parts, (dynamic) depthwise
    conv on the conv part, GELU(gate / τ) gating, 1×1 reduction, drop path, residual, then a 1×1 projection."""

    def __init__(self, config: MirageConfig, dim: int):
        super().__init__()
        hidden = int(config.gated_expansion_ratio * dim)
        conv_channels = int(config.gated_conv_ratio * dim)
        self.split_sizes = (hidden, hidden - conv_channels, conv_channels)  # gate, identity, conv
        self.kernel_size = config.gated_kernel_size

        self.norm = nn.BatchNorm2d(dim)
        self.in_proj = nn.Conv2d(dim, hidden * 2, kernel_size=1, bias=False)
        if config.dynamic_conv:
            self.kernel_generator = MirageKernelGenerator(conv_channels, self.kernel_size)
        else:
            self.depthwise = nn.Conv2d(
                conv_channels, conv_channels, self.kernel_size, padding=self.kernel_size // 2, groups=conv_channels, bias=False
            )
        self.out_proj = nn.Conv2d(hidden, dim, kernel_size=1, bias=False)
        self.drop_path = MirageDropPath(config.drop_path_rate)
        self.post_proj = nn.Conv2d(dim, dim, kernel_size=1, bias=False)
        self.gate_temperature = nn.Parameter(torch.ones(1))

    def dynamic_depthwise_conv(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Convolve each sample's channels with their own predicted kernels."""
        batch_size, channels = hidden_states.shape[:2]
        kernels = self.kernel_generator(hidden_states).reshape(batch_size * channels, 1, self.kernel_size, self.kernel_size)
        compiling = torch.compiler.is_compiling() or torch.compiler.is_exporting()
        if torch.is_grad_enabled() and hidden_states.device.type == "cpu" and not compiling:  # measured on the CPU only
            return PerSampleDepthwiseConv.apply(hidden_states, kernels)
        if batch_size == 1 and not torch.compiler.is_exporting():  # an ordinary depthwise conv, keeps channels-last
            return F.conv2d(hidden_states, kernels, padding=self.kernel_size // 2, groups=channels)
        return per_sample_depthwise_conv(hidden_states, kernels)

    def batch_norm(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """The training BatchNorm. When activation checkpointing replays this block during the backward pass
        (autograd is then running a graph task), the running statistics are not updated a second time."""
        if torch._C._current_graph_task_id() == -1:
            return self.norm(hidden_states)
        norm = self.norm
        return F.batch_norm(hidden_states, norm.running_mean, norm.running_var, norm.weight, norm.bias, True, 0.0, norm.eps)

    def folded_in_proj(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Weight and bias of `in_proj ∘ norm` with the BatchNorm's running statistics folded in, and 1 / τ folded
        into the gate rows: exact at inference, recomputed at every call (a few hundred numbers), so the state
        dict and `save_pretrained` keep the original parameters."""
        scale = self.norm.weight * torch.rsqrt(self.norm.running_var + self.norm.eps)  # [C]
        shift = self.norm.bias - self.norm.running_mean * scale
        weight = self.in_proj.weight.flatten(1)  # [2h, C]
        row_scale = torch.ones_like(weight[:, 0])
        row_scale = torch.cat((row_scale[: self.split_sizes[0]] / self.gate_temperature, row_scale[self.split_sizes[0] :]))
        folded_weight = weight * scale * row_scale[:, None]
        folded_bias = (weight @ shift) * row_scale
        return folded_weight[:, :, None, None], folded_bias

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if not self.training and fusable(hidden_states):
            samples = [self.fused_forward(sample) for sample in hidden_states.split(1)]
            return samples[0] if len(samples) == 1 else torch.cat(samples)
        shortcut = hidden_states
        if self.training:  # batch statistics: BatchNorm and the gate temperature stay separate
            expanded = self.in_proj(self.batch_norm(hidden_states))
            gate, identity, conv = torch.split(expanded, self.split_sizes, dim=1)
            gate = gate / self.gate_temperature
        else:
            gate, identity, conv = torch.split(F.conv2d(hidden_states, *self.folded_in_proj()), self.split_sizes, dim=1)
        if hasattr(self, "kernel_generator"):
            conv = self.dynamic_depthwise_conv(conv)
        else:
            conv = self.depthwise(conv)
        gated = cpu_kernels.gelu(gate) * torch.cat((identity, conv), dim=1)
        hidden_states = self.drop_path(self.out_proj(gated)) + shortcut
        return self.post_proj(hidden_states)

    def fused_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Inference on the CPU, one sample: the gate's GELU fused into its convolutions, the gating products and the
        residual sum applied in place. The gate is two convolutions, one per product, so that each in-place product
        reads a dense tensor (one gate convolution sliced for both measured up to 13 % slower on this module)."""
        _, identity_size, conv_size = self.split_sizes
        weight, bias = self.folded_in_proj()
        gate_weight, identity_weight, conv_weight = torch.split(weight, self.split_sizes)
        gate_bias, identity_bias, conv_bias = torch.split(bias, self.split_sizes)
        gate_for_identity = conv_gelu(hidden_states, gate_weight[:identity_size], gate_bias[:identity_size])
        gate_for_conv = conv_gelu(hidden_states, gate_weight[identity_size:], gate_bias[identity_size:])
        gated_identity = conv_mul(hidden_states, gate_for_identity, identity_weight, identity_bias)
        conv = F.conv2d(hidden_states, conv_weight, conv_bias)
        if hasattr(self, "kernel_generator"):  # one sample: its own kernels as a depthwise conv
            kernels = self.kernel_generator(conv).reshape(conv_size, 1, self.kernel_size, self.kernel_size)
        else:
            kernels = self.depthwise.weight
        gated_conv = conv_mul(conv, gate_for_conv, kernels, padding=self.kernel_size // 2, groups=conv_size)
        gated = torch.cat((gated_identity, gated_conv), dim=1)
        return self.post_proj(conv_add(gated, hidden_states, self.out_proj.weight))


class MirageChannelMLP(nn.Module):
    """Per-pixel MLP over channels: 1×1 conv to 2C, GELU, 1×1 conv back."""

    def __init__(self, dim: int, bias: bool):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, dim * 2, kernel_size=1, bias=bias)
        self.fc2 = nn.Conv2d(dim * 2, dim, kernel_size=1, bias=bias)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(conv_gelu(hidden_states, self.fc1.weight, self.fc1.bias))


class MirageMixer(nn.Module):
    """Channel-wise functional decomposition: attention, gated conv and MLP on a third of the channels each,
    cross-gated (each branch adds α·sigmoid(sum of the other two)), concatenated and projected."""

    def __init__(self, config: MirageConfig, dim: int, num_heads: int):
        super().__init__()
        self.branch_sizes = (dim // 3, dim // 3, dim - 2 * (dim // 3))
        self.attention = MirageChannelAttention(self.branch_sizes[0], num_heads, config.bias)
        self.gated_conv = MirageGatedConv(config, self.branch_sizes[1])
        self.mlp = MirageChannelMLP(self.branch_sizes[2], config.bias)
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=config.bias)
        self.alpha_attention = nn.Parameter(torch.ones(1))
        self.alpha_gated_conv = nn.Parameter(torch.ones(1))
        self.alpha_mlp = nn.Parameter(torch.ones(1))

    def forward(self, hidden_states: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """`residual + Mixer(hidden_states)`."""
        attention_in, gated_in, mlp_in = torch.split(hidden_states, self.branch_sizes, dim=1)
        fused_path = fusable(hidden_states)
        if fused_path:  # dense copies: the fused branches read their group several times
            attention_in, gated_in, mlp_in = (
                part.contiguous(memory_format=torch.channels_last) for part in (attention_in, gated_in, mlp_in)
            )
        branches = (self.attention(attention_in), self.gated_conv(gated_in), self.mlp(mlp_in))
        if fused_path and cpu_kernels.available():  # the branches have equal widths: dims are multiples of 3
            alphas = (self.alpha_attention.item(), self.alpha_gated_conv.item(), self.alpha_mlp.item())
            fused = cpu_kernels.cross_gate(branches, alphas)
        elif fused_path:
            fused = self.cross_gate_into_(torch.empty_like(hidden_states, memory_format=torch.channels_last), branches)
        else:
            attention_out, gated_out, mlp_out = branches
            fused = torch.cat(
                (
                    attention_out + self.alpha_attention * torch.sigmoid(gated_out + mlp_out),
                    gated_out + self.alpha_gated_conv * torch.sigmoid(attention_out + mlp_out),
                    mlp_out + self.alpha_mlp * torch.sigmoid(attention_out + gated_out),
                ),
                dim=1,
            )
        return conv_add(fused, residual, self.project_out.weight, self.project_out.bias)

    def cross_gate_into_(self, output: torch.Tensor, branches: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The cross-gating without autograd, each branch written into its channels of `output`: three passes
        per branch instead of four plus the concatenation (1.3-1.6× faster on the CPU)."""
        alphas = (self.alpha_attention, self.alpha_gated_conv, self.alpha_mlp)
        outputs = torch.split(output, self.branch_sizes, dim=1)
        for index, (branch, alpha, branch_output) in enumerate(zip(branches, alphas, outputs)):
            first, second = (other for other_index, other in enumerate(branches) if other_index != index)
            gate = torch.add(first, second).sigmoid_()
            torch.add(branch, gate, alpha=alpha.item(), out=branch_output)
        return output


class MirageFeedForward(nn.Module):
    """1×1 conv to 2·hidden, GELU, 3×3 depthwise conv, GELU(x1)·x2, 1×1 conv back; returns `residual + FFN(x)`.

    Inference on the CPU runs it over horizontal strips (one row of overlap for the 3×3 conv), so the 4×-wide
    hidden maps stay a few MB: on the CPU, allocating and first-touching fresh 50 MB buffers costs more than the
    arithmetic. Each strip is the 1×1 projection, then `cpu_kernels.gated_depthwise` (GELU, depthwise conv, GELU
    and product in one pass) where it could be built, else three oneDNN convolutions with the GELUs fused in and
    the product in place; the last 1×1 conv adds into the residual in place.
    """

    strip_bytes = 8 * 2**20  # target size of one strip's hidden tensor

    def __init__(self, dim: int, expansion_factor: float, bias: bool):
        super().__init__()
        hidden = int(dim * expansion_factor)
        self.project_in = nn.Conv2d(dim, hidden * 2, kernel_size=1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, kernel_size=3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, kernel_size=1, bias=bias)

    def forward(self, hidden_states: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        if fusable(hidden_states, residual):
            return self.add_to_(residual.clone(memory_format=torch.channels_last), hidden_states)
        gate, value = self.dwconv(cpu_kernels.gelu(self.project_in(hidden_states))).chunk(2, dim=1)
        return residual + self.project_out(cpu_kernels.gelu(gate) * value)

    def add_to_(self, accumulator: torch.Tensor, hidden_states: torch.Tensor) -> torch.Tensor:
        """`accumulator += FFN(hidden_states)` in place, without autograd: the fused CPU path, sample by sample and
        strip by strip (a sample, and a band of its rows, is a dense slice of a channels-last tensor), the last
        convolution adding straight into the accumulator's rows."""
        for sample_accumulator, sample in zip(accumulator.split(1), hidden_states.split(1)):
            height, width = sample.shape[2:]
            strip_rows = max(self.strip_bytes // (width * self.dwconv.out_channels * sample.element_size()), 1)
            for top in range(0, height, strip_rows):
                bottom = min(top + strip_rows, height)
                halo_top, halo_bottom = max(top - 1, 0), min(bottom + 1, height)  # rows the 3×3 conv reads
                product = self.gated_hidden(sample[:, :, halo_top:halo_bottom], top - halo_top, bottom - halo_top)
                conv_add_(sample_accumulator[:, :, top:bottom], product, self.project_out.weight, self.project_out.bias)
        return accumulator

    def gated_hidden(self, hidden_states: torch.Tensor, first: int, last: int) -> torch.Tensor:
        """GELU(x1)·x2 for rows [first, last) of one sample's band of rows, [1, hidden, last - first, W]: the 1×1
        projection and the hand-written kernel, or three fused convolutions and a depthwise one."""
        if cpu_kernels.available():
            projected = F.conv2d(hidden_states, self.project_in.weight, self.project_in.bias)
            return cpu_kernels.gated_depthwise(projected, self.dwconv.weight, self.dwconv.bias, first, last)
        hidden = self.project_out.in_channels
        (in_gate, in_value), (dw_gate, dw_value) = (
            (conv.weight[:hidden], conv.weight[hidden:]) for conv in (self.project_in, self.dwconv)
        )
        (in_gate_bias, in_value_bias), (dw_gate_bias, dw_value_bias) = (
            (None, None) if conv.bias is None else (conv.bias[:hidden], conv.bias[hidden:])
            for conv in (self.project_in, self.dwconv)
        )
        gate = conv_gelu(conv_gelu(hidden_states, in_gate, in_gate_bias), dw_gate, dw_gate_bias, padding=1, groups=hidden)
        value = conv_gelu(hidden_states, in_value, in_value_bias)
        return conv_mul(value, gate, dw_value, dw_value_bias, padding=1, groups=hidden)[:, :, first:last]


class MirageBlock(GradientCheckpointingLayer):
    def __init__(self, config: MirageConfig, dim: int, num_heads: int):
        super().__init__()
        self.norm1 = MirageLayerNorm(dim, config.layer_norm_type)
        self.mixer = MirageMixer(config, dim, num_heads)
        self.norm2 = MirageLayerNorm(dim, config.layer_norm_type)
        self.ffn = MirageFeedForward(dim, config.ffn_expansion_factor, config.bias)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.mixer(self.norm1(hidden_states), residual=hidden_states)
        if fusable(hidden_states):  # the mixer's output is a new tensor: the FFN adds into it, saving a copy
            return self.ffn.add_to_(hidden_states, self.norm2(hidden_states))
        return self.ffn(self.norm2(hidden_states), residual=hidden_states)


def mirage_stage(config: MirageConfig, dim: int, num_heads: int, depth: int) -> nn.Sequential:
    return nn.Sequential(*[MirageBlock(config, dim, num_heads) for _ in range(depth)])


class MirageDownsample(nn.Module):
    """3×3 conv C -> C/2, then PixelUnshuffle(2): half the size, twice the channels."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim // 2, kernel_size=3, padding=1, bias=False)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(self.conv(hidden_states), 2)


class MirageUpsample(nn.Module):
    """3×3 conv C -> 2C, then PixelShuffle(2): twice the size, half the channels."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim * 2, kernel_size=3, padding=1, bias=False)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(hidden_states), 2)


def spd_descriptor(features: torch.Tensor, eps: float, geometry: str) -> torch.Tensor:
    """Flattened SPD descriptor of [B, C, H, W] features: covariance over pixels (mean-centred, / (N-1)) + eps·I,
    or its matrix logarithm (symmetric eigendecomposition) for the log-Euclidean geometry. Always fp32."""
    batch_size, channels = features.shape[:2]
    with torch.autocast(device_type=features.device.type, enabled=False):
        flat = features.float().reshape(batch_size, channels, -1)
        centred = flat - flat.mean(dim=2, keepdim=True)
        covariance = centred @ centred.transpose(1, 2) / (flat.shape[2] - 1)
        covariance = covariance + eps * torch.eye(channels, device=features.device, dtype=covariance.dtype)
        if geometry == "log_euclidean":
            eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
            log_eigenvalues = eigenvalues.clamp_min(eps).log()
            covariance = (eigenvectors * log_eigenvalues.unsqueeze(1)) @ eigenvectors.transpose(1, 2)
        return covariance.reshape(batch_size, channels * channels)


class MirageSPDHead(nn.Module):
    """Training-only head: SPD descriptors of the shallow (level-1) and latent features, each reduced by a
    1×1 conv, flattened, projected by a linear layer and L2-normalised."""

    def __init__(self, config: MirageConfig):
        super().__init__()
        self.eps = config.spd_eps
        self.geometry = config.spd_geometry
        shallow, latent = config.spd_shallow_channels, config.spd_latent_channels
        self.reduce_shallow = nn.Conv2d(config.embed_dim, shallow, kernel_size=1)
        self.reduce_latent = nn.Conv2d(config.embed_dim * 4, latent, kernel_size=1)
        self.proj_shallow = nn.Linear(shallow * shallow, config.spd_projection_dim)
        self.proj_latent = nn.Linear(latent * latent, config.spd_projection_dim)

    def forward(self, shallow_features: torch.Tensor, latent_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shallow = spd_descriptor(self.reduce_shallow(shallow_features), self.eps, self.geometry)  # [B, 12*12]
        latent = spd_descriptor(self.reduce_latent(latent_features), self.eps, self.geometry)  # [B, 24*24]
        shallow_embedding = F.normalize(self.proj_shallow(shallow.to(self.proj_shallow.weight.dtype)), dim=1)
        latent_embedding = F.normalize(self.proj_latent(latent.to(self.proj_latent.weight.dtype)), dim=1)
        return shallow_embedding, latent_embedding  # [B, 64] each


class MiragePreTrainedModel(PreTrainedModel):
    config_class = MirageConfig
    base_model_prefix = "mirage"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """PyTorch's default initialisation, as the official model uses (it has no init of its own)."""
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                fan_in = module.weight[0].numel()
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.BatchNorm2d):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            init.zeros_(module.num_batches_tracked)
        elif isinstance(module, MirageLayerNorm):
            init.ones_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, MirageChannelAttention):
            init.ones_(module.temperature)
        elif isinstance(module, MirageGatedConv):
            init.ones_(module.gate_temperature)
        elif isinstance(module, MirageMixer):
            init.ones_(module.alpha_attention)
            init.ones_(module.alpha_gated_conv)
            init.ones_(module.alpha_mlp)


class MirageForImageRestoration(MiragePreTrainedModel):
    """MIRAGE restoration network: degraded RGB in [0, 1] -> restored RGB, any height and width."""

    def __init__(self, config: MirageConfig):
        super().__init__(config)
        dim = config.embed_dim
        depths, heads = config.depths, config.num_heads

        self.patch_embed = nn.Conv2d(config.num_channels, dim, kernel_size=3, padding=1, bias=config.bias)
        self.encoder_level1 = mirage_stage(config, dim, heads[0], depths[0])
        self.down1_2 = MirageDownsample(dim)
        self.encoder_level2 = mirage_stage(config, dim * 2, heads[1], depths[1])
        self.down2_3 = MirageDownsample(dim * 2)
        self.encoder_level3 = mirage_stage(config, dim * 4, heads[2], depths[2])
        self.down3_4 = MirageDownsample(dim * 4)
        self.latent = mirage_stage(config, dim * 8, heads[3], depths[3])

        self.reduce_dim_level3 = nn.Conv2d(dim * 8, dim * 4, kernel_size=1, bias=config.bias)
        self.up4_3 = MirageUpsample(dim * 4)
        self.reduce_chan_level3 = nn.Conv2d(dim * 6, dim * 4, kernel_size=1, bias=config.bias)
        self.decoder_level3 = mirage_stage(config, dim * 4, heads[2], depths[2])
        self.up3_2 = MirageUpsample(dim * 4)
        self.reduce_chan_level2 = nn.Conv2d(dim * 4, dim * 2, kernel_size=1, bias=config.bias)
        self.decoder_level2 = mirage_stage(config, dim * 2, heads[1], depths[1])
        self.up2_1 = MirageUpsample(dim * 2)
        # Level 1 of the decoder keeps the concatenated 2·dim channels (no reduction), as the official model.
        self.decoder_level1 = mirage_stage(config, dim * 2, heads[0], depths[0])
        self.refinement = mirage_stage(config, dim * 2, heads[0], config.num_refinement_blocks)
        self.output = nn.Conv2d(dim * 2, config.num_channels, kernel_size=3, padding=1, bias=config.bias)

        self.spd_head = MirageSPDHead(config)
        self.post_init()

    def high_resolution_checkpointing_enable(self) -> None:
        """Activation checkpointing for the full- and half-resolution blocks only. They hold most of the activations
        (Tiny, batch 8, 128², CPU: peak 4.1 GB instead of 11.1 GB; every block checkpointed: 2.5 GB), while the
        quarter- and eighth-resolution blocks keep theirs, so less is recomputed than with
        `activation_checkpointing_enable()`."""
        self.activation_checkpointing_enable()
        for stage in (self.encoder_level3, self.latent, self.decoder_level3):
            for block in stage:
                block.gradient_checkpointing = False

    def pad_to_multiple(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pad bottom and right to a multiple of 8 (reflect where the image is large enough, else replicate)."""
        height, width = pixel_values.shape[-2:]
        multiple = self.config.pad_multiple
        pad_bottom, pad_right = -height % multiple, -width % multiple
        if torch.compiler.is_exporting():  # no shape-dependent branch: exported inputs are at least 8 pixels
            return F.pad(pixel_values, (0, pad_right, 0, pad_bottom), mode="reflect")
        if pad_bottom == 0 and pad_right == 0:
            return pixel_values
        mode = "reflect" if pad_bottom < height and pad_right < width else "replicate"
        return F.pad(pixel_values, (0, pad_right, 0, pad_bottom), mode=mode)

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ImageRestorationOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, height, width)`): degraded images in [0, 1].
        labels (`torch.FloatTensor` of the same shape, *optional*): clean images; when given the losses are computed.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        height, width = pixel_values.shape[-2:]
        # Channels-last runs the convolutions and the channel LayerNorms several times faster on the CPU.
        padded = self.pad_to_multiple(pixel_values)
        if not torch.compiler.is_exporting():  # exported graphs carry no layout
            padded = padded.contiguous(memory_format=torch.channels_last)

        # Encoder: [B, d, H, W] -> [B, 2d, H/2, W/2] -> [B, 4d, H/4, W/4] -> [B, 8d, H/8, W/8]
        encoder_level1 = self.encoder_level1(self.patch_embed(padded))
        encoder_level2 = self.encoder_level2(self.down1_2(encoder_level1))
        encoder_level3 = self.encoder_level3(self.down2_3(encoder_level2))
        latent = self.reduce_dim_level3(self.latent(self.down3_4(encoder_level3)))  # [B, 4d, H/8, W/8]

        # Decoder with skip connections
        hidden_states = self.reduce_chan_level3(torch.cat([self.up4_3(latent), encoder_level3], dim=1))
        hidden_states = self.decoder_level3(hidden_states)  # [B, 4d, H/4, W/4]
        hidden_states = self.reduce_chan_level2(torch.cat([self.up3_2(hidden_states), encoder_level2], dim=1))
        hidden_states = self.decoder_level2(hidden_states)  # [B, 2d, H/2, W/2]
        hidden_states = torch.cat([self.up2_1(hidden_states), encoder_level1], dim=1)  # [B, 2d, H, W]
        hidden_states = self.refinement(self.decoder_level1(hidden_states))
        reconstruction = self.output(hidden_states) + padded
        if torch.compiler.is_exporting():  # a gather, so the graph holds for padded and unpadded sizes alike
            rows, columns = torch.arange(height, device=padded.device), torch.arange(width, device=padded.device)
            reconstruction = reconstruction.index_select(2, rows).index_select(3, columns)
        else:
            reconstruction = reconstruction[..., :height, :width].contiguous()

        loss = l1_loss = fourier_loss = contrastive_loss = None
        if labels is not None:
            labels = labels.to(reconstruction.dtype)
            l1_loss = F.l1_loss(reconstruction, labels)
            fourier_loss = self.config.fourier_loss_weight * fourier_l1_loss(reconstruction, labels)
            shallow_embedding, latent_embedding = self.spd_head(encoder_level1, latent)
            contrastive_loss = self.config.contrastive_loss_weight * info_nce_loss(
                shallow_embedding, latent_embedding, self.config.contrastive_temperature
            )
            loss = l1_loss + fourier_loss + contrastive_loss

        if not return_dict:
            output = (reconstruction,)
            return ((loss, l1_loss, fourier_loss, contrastive_loss) + output) if loss is not None else output
        return ImageRestorationOutput(
            loss=loss,
            reconstruction=reconstruction,
            l1_loss=l1_loss,
            fourier_loss=fourier_loss,
            contrastive_loss=contrastive_loss,
        )


__all__ = ["ImageRestorationOutput", "MirageForImageRestoration", "MiragePreTrainedModel"]
