"""Check MIRAGE on an accelerator before timing it: outputs and gradients against a float64 reference on the CPU.

    python benchmarks/device_check.py --device cuda                       # random weights
    python benchmarks/device_check.py --device cuda --official /tmp/MIRAGE  # the official model's weights, and its
                                                                          # outputs on the device side by side

For each variant the reference is our model in float64 on the CPU (the straightforward path: the fused CPU kernels
are float32 only). Every row gives ‖out − ref‖ / ‖ref‖ and the max abs difference, for inference on two inputs
(batch 2 at 96×128, and batch 1 at 100×140, which is padded) and for one training step's loss and gradients
(batch 2 at 64×64, stochastic depth off so the step is deterministic). Tolerances follow the arithmetic: fp32 with
TF32 off 1e-5 relative; TF32 (cuDNN's default for fp32 convolutions) 1e-2; bf16 autocast 5e-2. The exit code is
1 when a row fails, so a GPU session knows the timings that follow are worth reporting.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import official_model  # noqa: E402 - the official import with timm / fvcore stand-ins

from mirage_hf import MirageConfig, MirageForImageRestoration  # noqa: E402
from mirage_hf.convert import convert_state_dict  # noqa: E402

TOLERANCE = {"fp32": 1e-5, "tf32": 1e-2, "bf16": 5e-2}


def compare(output: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    """(relative L2 error, max abs difference) in float64; NaN when the output is not finite."""
    output, reference = output.detach().double().cpu(), reference.detach().double().cpu()
    if not torch.isfinite(output).all():
        return math.nan, math.nan
    return ((output - reference).norm() / reference.norm()).item(), (output - reference).abs().max().item()


def inference_outputs(model, inputs, device, precision, official: bool) -> list[torch.Tensor]:
    model = copy.deepcopy(model).to(device).eval()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    outputs = []
    with torch.no_grad(), autocast:
        for pixel_values in inputs:
            output = model(pixel_values.to(device))
            outputs.append((output[0] if official else output.reconstruction).float())
    return outputs


def training_step(model, pixel_values, labels, device, precision, checkpointing=False) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, every parameter's gradient flattened into one vector) of one step."""
    model = copy.deepcopy(model).to(device).train()
    if checkpointing:
        model.activation_checkpointing_enable()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    with autocast:
        loss = model(pixel_values.to(device), labels=labels.to(device)).loss
    loss.backward()
    gradients = torch.cat([parameter.grad.reshape(-1).double().cpu() for parameter in model.parameters() if parameter.grad is not None])
    return loss.detach().double().cpu(), gradients


def set_tf32(enabled: bool) -> None:
    torch.backends.cudnn.allow_tf32 = enabled
    torch.backends.cuda.matmul.allow_tf32 = enabled


def check_variant(variant: str, device: torch.device, official_path: str | None):
    """Yield (variant, check, run, relative error, max abs difference, tolerance) rows as they are computed."""
    config = getattr(MirageConfig, variant)(drop_path_rate=0.0)
    torch.manual_seed(0)  # the same weights on every run (the official ones replace them when given)
    model = MirageForImageRestoration(config)
    official = None
    if official_path:
        official = official_model(official_path, variant)
        model.load_state_dict(convert_state_dict(official.state_dict()))
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.rand(2, 3, 96, 128, generator=generator), torch.rand(1, 3, 100, 140, generator=generator)]
    references = inference_outputs(model.double(), [x.double() for x in inputs], torch.device("cpu"), "fp64", False)
    model.float()

    cases = [("ours", "cpu", "fp32", False)]
    if device.type != "cpu":
        cases += [("ours", device.type, "fp32", False), ("ours", device.type, "tf32", False), ("ours", device.type, "bf16", False)]
        if official is not None:
            cases += [("official", device.type, "fp32", True), ("official", device.type, "bf16", True)]
    for name, where, precision, is_official in cases:
        set_tf32(precision == "tf32")
        # The official model does not pad: it takes sizes that are multiples of 8 only.
        checked = [index for index, x in enumerate(inputs) if not is_official or x.shape[-1] % 8 == x.shape[-2] % 8 == 0]
        outputs = inference_outputs(official if is_official else model, [inputs[index] for index in checked],
                                    torch.device(where) if where == "cpu" else device, precision, is_official)
        for index, output in zip(checked, outputs):
            yield (variant, f"inference {tuple(inputs[index].shape)}", f"{name} {where} {precision}",
                   *compare(output, references[index]), TOLERANCE[precision])

    pixel_values, labels = torch.rand(2, 3, 64, 64, generator=generator), torch.rand(2, 3, 64, 64, generator=generator)
    reference_loss, reference_gradients = training_step(model.double(), pixel_values.double(), labels.double(), torch.device("cpu"), "fp64")
    model.float()
    cases = [("ours", "cpu", "fp32", False), ("ours", "cpu", "fp32", True)]
    if device.type != "cpu":
        cases += [("ours", device.type, "fp32", False), ("ours", device.type, "fp32", True), ("ours", device.type, "bf16", False)]
    for name, where, precision, checkpointing in cases:
        set_tf32(False)
        loss, gradients = training_step(model, pixel_values, labels, torch.device(where) if where == "cpu" else device, precision,
                                        checkpointing)
        label = f"{name} {where} {precision}" + (" checkpointed" if checkpointing else "")
        yield variant, "training loss", label, *compare(loss, reference_loss), TOLERANCE[precision]
        yield variant, "training gradients", label, *compare(gradients, reference_gradients), TOLERANCE[precision]
    set_tf32(True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--official", help="path to a checkout of the official repository (Amazingren/MIRAGE)")
    parser.add_argument("--variants", nargs="+", default=["tiny", "small"], choices=["tiny", "small"])
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    print(f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else args.device}, torch {torch.__version__}")
    print("| variant | check | run | relative L2 error | max abs difference | tolerance | |")
    print("|---|---|---|---|---|---|---|")
    failed = 0
    for variant in args.variants:
        for variant_name, check, run, relative, max_abs, tolerance in check_variant(variant, device, args.official):
            ok = relative <= tolerance  # False for NaN
            failed += not ok
            print(f"| {variant_name} | {check} | {run} | {relative:.2e} | {max_abs:.2e} | {tolerance:.0e} | {'ok' if ok else 'FAILED'} |",
                  flush=True)
    print(f"{failed} failed" if failed else "all passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
