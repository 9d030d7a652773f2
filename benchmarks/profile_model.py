"""Where one MIRAGE forward pass (or training step) spends its time: the top operators by self time.

    python benchmarks/profile_model.py --variant tiny --size 256                      # CPU, fp32
    python benchmarks/profile_model.py --device cuda --dtype bf16 --size 1024 --train

Runs a few warm-up passes, then profiles `--repeats` passes with `torch.profiler` and prints the operators
sorted by their own time on the device (CPU time on the CPU), so the share of each kind of work is visible.
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from mirage_hf import MirageConfig, MirageForImageRestoration
from mirage_hf.allocator import retain_freed_memory


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="tiny", choices=["tiny", "small"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--train", action="store_true", help="profile a training step (forward, backward) instead")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=25)
    args = parser.parse_args(argv)

    retain_freed_memory()
    device = torch.device(args.device)
    model = MirageForImageRestoration(getattr(MirageConfig, args.variant)()).to(device).train(args.train)
    pixel_values = torch.rand(args.batch, 3, args.size, args.size, device=device)
    labels = torch.rand_like(pixel_values)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16")

    def step():
        with torch.set_grad_enabled(args.train), autocast:
            output = model(pixel_values, labels=labels if args.train else None)
        if args.train:
            output.loss.backward()
            model.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as profiler:
        for _ in range(args.repeats):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    sort_by = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"{args.variant} {'training step' if args.train else 'forward'} {args.batch}×3×{args.size}², {args.device} {args.dtype}, "
          f"{args.repeats} passes")
    print(profiler.key_averages().table(sort_by=sort_by, row_limit=args.rows, max_name_column_width=60))


if __name__ == "__main__":
    main()
