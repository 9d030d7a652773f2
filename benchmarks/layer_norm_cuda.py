"""Channel LayerNorm on CUDA: `MirageLayerNorm` (F.layer_norm on the channels-last view) against `torch.var_mean`
plus elementwise ops, at the shapes of the Tiny model at 1024², fp32 and under bf16 autocast. Median of 30 CUDA-event
timings after 3 warm-ups; prints the max abs difference from `MirageLayerNorm`.

    PYTHONPATH=src python benchmarks/layer_norm_cuda.py

Results: benchmarks/results/h200-2026-11-26/run2-layer-norm.txt.
"""

import torch

from mirage_hf.modeling_mirage import MirageLayerNorm


def var_mean_layer_norm(hidden_states, weight, bias, eps=1e-5):
    """LayerNorm over dim 1 as a reduction plus elementwise ops (each a bandwidth-bound kernel)."""
    variance, mean = torch.var_mean(hidden_states, dim=1, keepdim=True, correction=0)
    return (hidden_states - mean) * torch.rsqrt(variance + eps) * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)


def var_mean_layer_norm_fp32(hidden_states, weight, bias, eps=1e-5):
    return var_mean_layer_norm(hidden_states.float(), weight, bias, eps)


def median_ms(function, repeats=30):
    for _ in range(3):
        function()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    timings = []
    for _ in range(repeats):
        start.record()
        function()
        end.record()
        torch.cuda.synchronize()
        timings.append(start.elapsed_time(end))
    return sorted(timings)[len(timings) // 2]


def main():
    torch.manual_seed(0)
    for channels, size in [(48, 1024), (96, 512), (192, 256), (384, 128), (24, 1024)]:
        layer_norm = MirageLayerNorm(channels, "with_bias").cuda()
        with torch.no_grad():
            layer_norm.weight.normal_()
            layer_norm.bias.normal_()
        hidden_fp32 = torch.randn(1, channels, size, size, device="cuda").contiguous(memory_format=torch.channels_last)
        for dtype in (torch.float32, torch.bfloat16):
            hidden_states = hidden_fp32.to(dtype)
            with torch.no_grad(), torch.autocast("cuda", torch.bfloat16, enabled=dtype == torch.bfloat16):
                reference = layer_norm(hidden_states)
                row = [f"C={channels} {size}² {str(dtype)[6:]}", f"current {median_ms(lambda: layer_norm(hidden_states)):.3f} ms"]
                for name, function in [("var_mean", var_mean_layer_norm), ("var_mean fp32", var_mean_layer_norm_fp32)]:
                    output = function(hidden_states, layer_norm.weight, layer_norm.bias)
                    milliseconds = median_ms(lambda: function(hidden_states, layer_norm.weight, layer_norm.bias))
                    difference = (output.float() - reference.float()).abs().max().item()
                    row.append(f"{name} {milliseconds:.3f} ms (diff {difference:.1e}, {output.dtype})")
            print(" | ".join(row), flush=True)


if __name__ == "__main__":
    main()
