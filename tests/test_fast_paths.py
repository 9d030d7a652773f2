"""The optimised model equals the straightforward formulation (kept here as the reference) on random inputs."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_config

from mirage_hf import MirageForImageRestoration, cpu_fusion
from mirage_hf import modeling_mirage as modeling

# ------------------------------------------------------------------ the straightforward formulation (reference)


def reference_layer_norm(self, hidden_states):
    variance = hidden_states.var(dim=1, keepdim=True, unbiased=False)
    if self.bias is None:
        return hidden_states / torch.sqrt(variance + self.eps) * self.weight[:, None, None]
    mean = hidden_states.mean(dim=1, keepdim=True)
    return (hidden_states - mean) / torch.sqrt(variance + self.eps) * self.weight[:, None, None] + self.bias[:, None, None]


def reference_attention(self, hidden_states):
    batch_size, channels, height, width = hidden_states.shape
    qkv = self.qkv_dwconv(self.qkv(hidden_states))
    query, key, value = qkv.reshape(batch_size, 3, self.num_heads, channels // self.num_heads, height * width).unbind(1)
    attention = (F.normalize(query, dim=-1) @ F.normalize(key, dim=-1).transpose(-2, -1)) * self.temperature
    return (attention.softmax(dim=-1) @ value).reshape(batch_size, channels, height, width)


def reference_gated_conv(self, hidden_states):
    shortcut = hidden_states
    gate, identity, conv = torch.split(self.in_proj(self.norm(hidden_states)), self.split_sizes, dim=1)
    batch_size, channels, height, width = conv.shape
    kernels = self.kernel_generator(conv).reshape(batch_size * channels, 1, self.kernel_size, self.kernel_size)
    conv = F.conv2d(conv.reshape(1, batch_size * channels, height, width), kernels, padding=self.kernel_size // 2,
                    groups=batch_size * channels).reshape(batch_size, channels, height, width)
    gated = F.gelu(gate / self.gate_temperature) * torch.cat((identity, conv), dim=1)
    return self.post_proj(self.drop_path(self.out_proj(gated)) + shortcut)


def reference_mlp(self, hidden_states):
    return self.fc2(F.gelu(self.fc1(hidden_states)))


def reference_mixer(self, hidden_states, residual):
    attention_in, gated_in, mlp_in = torch.split(hidden_states, self.branch_sizes, dim=1)
    attention_out, gated_out, mlp_out = self.attention(attention_in), self.gated_conv(gated_in), self.mlp(mlp_in)
    fused = torch.cat(
        (
            attention_out + self.alpha_attention * torch.sigmoid(gated_out + mlp_out),
            gated_out + self.alpha_gated_conv * torch.sigmoid(attention_out + mlp_out),
            mlp_out + self.alpha_mlp * torch.sigmoid(attention_out + gated_out),
        ),
        dim=1,
    )
    return residual + self.project_out(fused)


def reference_feed_forward(self, hidden_states, residual):
    gate, value = self.dwconv(F.gelu(self.project_in(hidden_states))).chunk(2, dim=1)
    return residual + self.project_out(F.gelu(gate) * value)


def reference_block(self, hidden_states):
    hidden_states = self.mixer(self.norm1(hidden_states), residual=hidden_states)
    return self.ffn(self.norm2(hidden_states), residual=hidden_states)


@pytest.fixture
def reference(monkeypatch):
    """Context in which every module runs the straightforward formulation."""

    def use_reference():
        monkeypatch.setattr(modeling.MirageLayerNorm, "forward", reference_layer_norm)
        monkeypatch.setattr(modeling.MirageChannelAttention, "forward", reference_attention)
        monkeypatch.setattr(modeling.MirageGatedConv, "forward", reference_gated_conv)
        monkeypatch.setattr(modeling.MirageFeedForward, "forward", reference_feed_forward)
        monkeypatch.setattr(modeling.MirageChannelMLP, "forward", reference_mlp)
        monkeypatch.setattr(modeling.MirageMixer, "forward", reference_mixer)
        monkeypatch.setattr(modeling.MirageBlock, "forward", reference_block)

    return use_reference


def randomised_model(**overrides) -> MirageForImageRestoration:
    """Tiny model whose BatchNorm statistics, norms, temperatures and alphas are all away from their init."""
    torch.manual_seed(0)
    model = MirageForImageRestoration(tiny_config(**overrides))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator))
            elif tensor.is_floating_point() and tensor.ndim == 1 or "temperature" in name or "alpha" in name:
                tensor.add_(0.2 * torch.randn(tensor.shape, generator=generator))
    return model


def max_difference(first: torch.Tensor, second: torch.Tensor) -> float:
    return (first - second).abs().max().item()


# --------------------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("shape", [(1, 3, 40, 56), (2, 3, 37, 29)])
def test_inference_equals_reference(reference, monkeypatch, shape):
    model = randomised_model().eval()
    pixel_values = torch.rand(shape, generator=torch.Generator().manual_seed(2))
    monkeypatch.setattr(modeling.MirageFeedForward, "strip_bytes", 4096)  # force several FFN strips
    with torch.no_grad():
        fast = model(pixel_values).reconstruction
        reference()
        expected = model(pixel_values).reconstruction
    assert fast.shape == expected.shape == shape
    assert max_difference(fast, expected) < 1e-5


def test_bias_free_layer_norm_equals_reference(reference):
    norm = modeling.MirageLayerNorm(12, "bias_free")
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    hidden_states = torch.randn(2, 12, 5, 7).contiguous(memory_format=torch.channels_last)
    fast = norm(hidden_states)
    reference()
    assert max_difference(fast, norm(hidden_states)) < 1e-6


def test_batch_norm_folding_equals_batch_norm_then_conv():
    model = randomised_model().eval()
    gated_conv = model.encoder_level1[0].mixer.gated_conv
    hidden_states = torch.randn(1, gated_conv.norm.num_features, 9, 11)
    weight, bias = gated_conv.folded_in_proj()
    expected = gated_conv.in_proj(gated_conv.norm(hidden_states))
    expected[:, : gated_conv.split_sizes[0]] /= gated_conv.gate_temperature
    assert max_difference(F.conv2d(hidden_states, weight, bias), expected) < 1e-5


def test_folding_leaves_the_state_dict_alone(tmp_path):
    model = randomised_model().eval()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    with torch.no_grad():
        model(torch.rand(1, 3, 16, 16))
    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[name], before[name]) for name in before)


def train_step_gradients(model: MirageForImageRestoration, pixel_values, labels):
    torch.manual_seed(3)  # same drop-path masks in both runs
    model.zero_grad(set_to_none=True)
    loss = model(pixel_values, labels=labels).loss
    loss.backward()
    return loss.detach(), {name: parameter.grad.clone() for name, parameter in model.named_parameters()}


def test_training_forward_and_backward_equal_reference(reference):
    pixel_values = torch.rand(2, 3, 24, 32, generator=torch.Generator().manual_seed(4))
    labels = torch.rand(2, 3, 24, 32, generator=torch.Generator().manual_seed(5))
    fast_model, reference_model = randomised_model().train(), randomised_model().train()
    fast_loss, fast_gradients = train_step_gradients(fast_model, pixel_values, labels)
    reference()
    expected_loss, expected_gradients = train_step_gradients(reference_model, pixel_values, labels)
    assert abs(fast_loss.item() - expected_loss.item()) < 1e-5
    for name, gradient in expected_gradients.items():
        assert max_difference(fast_gradients[name], gradient) < 1e-4 * max(1.0, gradient.abs().max().item()), name
    for name, buffer in reference_model.named_buffers():  # BatchNorm statistics moved alike
        assert torch.allclose(dict(fast_model.named_buffers())[name], buffer, atol=1e-6), name


def test_gradient_checkpointing_same_gradients_and_batch_norm_updated_once():
    pixel_values = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(6))
    labels = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(7))
    plain, checkpointed = randomised_model().train(), randomised_model().train()
    checkpointed.activation_checkpointing_enable()
    assert checkpointed.encoder_level1[0].gradient_checkpointing
    plain_loss, plain_gradients = train_step_gradients(plain, pixel_values, labels)
    checkpointed_loss, checkpointed_gradients = train_step_gradients(checkpointed, pixel_values, labels)
    assert torch.allclose(plain_loss, checkpointed_loss, atol=1e-6)
    for name, gradient in plain_gradients.items():
        assert max_difference(checkpointed_gradients[name], gradient) < 1e-5, name
    checkpointed_buffers = dict(checkpointed.named_buffers())
    for name, buffer in plain.named_buffers():
        assert torch.allclose(checkpointed_buffers[name], buffer, atol=1e-6), name


# ------------------------------------------------------------ fused oneDNN kernels, dynamic conv, checkpointing


@pytest.mark.parametrize("padding, groups, bias", [(0, 1, True), (0, 1, False), (1, 6, True), (3, 6, False)])
def test_fused_convolutions_equal_the_plain_ops(padding, groups, bias):
    generator = torch.Generator().manual_seed(8)
    hidden_states = torch.randn(2, 6, 9, 13, generator=generator).contiguous(memory_format=torch.channels_last)
    kernel = 2 * padding + 1
    weight = torch.randn(6, 6 // groups, kernel, kernel, generator=generator) * 0.3
    bias = torch.randn(6, generator=generator) if bias else None
    other = torch.randn(2, 6, 9, 13, generator=generator).contiguous(memory_format=torch.channels_last)
    plain = F.conv2d(hidden_states, weight, bias, padding=padding, groups=groups)
    with torch.no_grad():
        assert cpu_fusion.fusable(hidden_states)
        assert max_difference(cpu_fusion.conv_gelu(hidden_states, weight, bias, padding, groups), F.gelu(plain)) < 1e-5
        assert max_difference(cpu_fusion.conv_mul(hidden_states, other, weight, bias, padding, groups), plain * other) < 1e-5
        assert max_difference(cpu_fusion.conv_add(hidden_states, other, weight, bias, padding, groups), plain + other) < 1e-5
    assert not cpu_fusion.fusable(hidden_states.requires_grad_())  # autograd: the plain ops, with their gradients


def test_in_place_fused_sum_writes_into_a_band_of_rows():
    generator = torch.Generator().manual_seed(13)
    hidden_states = torch.randn(1, 6, 4, 13, generator=generator).contiguous(memory_format=torch.channels_last)
    weight, bias = torch.randn(5, 6, 1, 1, generator=generator), torch.randn(5, generator=generator)
    accumulator = torch.randn(1, 5, 9, 13, generator=generator).contiguous(memory_format=torch.channels_last)
    expected = accumulator.clone()
    expected[:, :, 3:7] += F.conv2d(hidden_states, weight, bias)
    with torch.no_grad():
        band = accumulator[:, :, 3:7]
        assert cpu_fusion.conv_add_(band, hidden_states, weight, bias).data_ptr() == band.data_ptr()
    assert max_difference(accumulator, expected) < 1e-5


def test_inference_uses_the_fused_kernels_and_equals_the_unfused_path(monkeypatch):
    model = randomised_model().eval()
    pixel_values = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(9))
    calls = []
    fused_op = cpu_fusion._pointwise_conv

    class CountingOp:
        def __call__(self, *args):
            calls.append("unary")
            return fused_op(*args)

    class CountingInPlaceOp:
        def binary(self, *args):
            calls.append("in place")
            return in_place_op.binary(*args)

    in_place_op = cpu_fusion._pointwise_conv_
    monkeypatch.setattr(cpu_fusion, "_pointwise_conv", CountingOp())
    monkeypatch.setattr(cpu_fusion, "_pointwise_conv_", CountingInPlaceOp())
    with torch.no_grad():
        fused = model(pixel_values).reconstruction
        assert {"unary", "in place"} <= set(calls)
        monkeypatch.setattr(cpu_fusion, "_pointwise_conv", None)  # as on a torch build without oneDNN
        unfused = model(pixel_values).reconstruction
    assert max_difference(fused, unfused) < 1e-5


def test_per_sample_depthwise_conv_gradients():
    generator = torch.Generator().manual_seed(10)
    hidden_states = torch.randn(2, 3, 6, 7, generator=generator, dtype=torch.float64).requires_grad_()
    kernels = torch.randn(6, 1, 3, 3, generator=generator, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(modeling.PerSampleDepthwiseConv.apply, (hidden_states, kernels))


def test_high_resolution_checkpointing_marks_the_large_stages_and_keeps_gradients():
    pixel_values = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(11))
    labels = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(12))
    plain, checkpointed = randomised_model().train(), randomised_model().train()
    checkpointed.high_resolution_checkpointing_enable()
    flags = {name: [block.gradient_checkpointing for block in getattr(checkpointed, name)]
             for name in ("encoder_level1", "encoder_level2", "encoder_level3", "latent", "decoder_level3",
                          "decoder_level2", "decoder_level1", "refinement")}
    assert not any(flags["encoder_level3"] + flags["latent"] + flags["decoder_level3"])
    assert all(flags["encoder_level1"] + flags["encoder_level2"] + flags["decoder_level2"] + flags["decoder_level1"] + flags["refinement"])
    plain_loss, plain_gradients = train_step_gradients(plain, pixel_values, labels)
    checkpointed_loss, checkpointed_gradients = train_step_gradients(checkpointed, pixel_values, labels)
    assert torch.allclose(plain_loss, checkpointed_loss, atol=1e-6)
    for name, gradient in plain_gradients.items():
        assert max_difference(checkpointed_gradients[name], gradient) < 1e-5, name


def test_retain_freed_memory_takes_on_linux():
    code = "from mirage_hf.allocator import retain_freed_memory as r; print(r(), r())"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    expected = "True" if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc" else "False"
    assert output == [expected, expected]
