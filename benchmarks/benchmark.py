"""Speed and memory of MIRAGE inference and training, optionally side by side with the official implementation.

    python benchmarks/benchmark.py                                   # this package only
    python benchmarks/benchmark.py --official /path/to/MIRAGE        # + official code, same weights, ratios
    python benchmarks/benchmark.py --device cuda --dtype bf16        # GPU, bf16 autocast

On the CPU every case runs in its own subprocess, so its peak RSS is its own; on a GPU the cases run in this
process one after another, each with the peak counter (`max_memory_allocated`) reset and the cache emptied first.
The cases of the two implementations are interleaved, `--rounds` times (alternating which goes first), and latency
is the median over all rounds' timed runs (`--repeats` per round, after one warm-up on the CPU, three on a GPU;
the first call's time is kept apart, as it holds the compilation of `--compile` rows). Our
cases run as the `mirage` CLI, the training script and the Space do, with glibc keeping freed memory
(`mirage_hf.allocator.retain_freed_memory`); `--official-retained` adds official rows with that same setting,
so the part of the gain that comes from the allocator alone is visible. The official code (repository
Amazingren/MIRAGE) is imported from the given checkout with stand-ins for timm and fvcore, never copied here; its
weights are converted with `mirage_hf.convert`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import types
from datetime import datetime, timezone
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


# ----------------------------------------------------------------------------------------------- one case (child)


def install_official_stand_ins() -> None:
    """timm and fvcore only give the official model DropPath, an init and FLOP counting: replace them."""
    import torch

    class DropPath(torch.nn.Module):  # timm's, as the official training uses it (drop_path=0.1 in the gated branch)
        def __init__(self, drop_prob: float = 0.0):
            super().__init__()
            self.drop_prob = drop_prob

        def forward(self, x):
            if not self.training or self.drop_prob == 0.0:
                return x
            mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - self.drop_prob)
            return x * mask / (1 - self.drop_prob)

    layers = types.ModuleType("timm.models.layers")
    layers.DropPath, layers.trunc_normal_ = DropPath, torch.nn.init.trunc_normal_
    fvcore_nn = types.ModuleType("fvcore.nn")
    fvcore_nn.FlopCountAnalysis = fvcore_nn.flop_count_table = None
    sys.modules.update({"timm": types.ModuleType("timm"), "timm.models": types.ModuleType("timm.models"),
                        "timm.models.layers": layers, "fvcore": types.ModuleType("fvcore"), "fvcore.nn": fvcore_nn})


def official_model(official_path: str, variant: str):
    install_official_stand_ins()
    sys.path.insert(0, official_path)
    module = __import__(f"net.mirage_{variant}", fromlist=["MIRAGE"])
    import torch

    torch.manual_seed(0)
    return module.MIRAGE()


def build_model(case: dict):
    """(model, forward(pixel_values) -> (output, extra loss or None)) for the case's implementation."""
    import torch

    from mirage_hf import MirageConfig, MirageForImageRestoration
    from mirage_hf.convert import convert_state_dict

    if case["impl"] == "official":
        model = official_model(case["official"], case["variant"])
        return model, lambda pixels: model(pixels)
    model = MirageForImageRestoration(getattr(MirageConfig, case["variant"])())
    if case.get("official"):  # the very weights the official case draws
        model.load_state_dict(convert_state_dict(official_model(case["official"], case["variant"]).state_dict()))
    if case.get("checkpointing") == "all":
        model.activation_checkpointing_enable()
    elif case.get("checkpointing") == "high_resolution":
        model.high_resolution_checkpointing_enable()
    if case.get("compile"):
        torch._dynamo.reset()  # each case compiles afresh, for its one shape
        model = torch.compile(model, dynamic=False)

    def forward(pixels, labels=None):
        output = model(pixels, labels=labels)
        return output.reconstruction, output

    return model, forward


def run_case(case: dict) -> dict:
    import torch

    torch.set_num_threads(case["threads"])
    if case.get("retain"):
        from mirage_hf.allocator import retain_freed_memory

        retain_freed_memory()
    device = torch.device(case["device"])
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = case.get("cudnn_benchmark", False)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    dtype = getattr(torch, DTYPES[case["dtype"]])
    autocast = torch.autocast(device.type, dtype=dtype, enabled=case["dtype"] != "fp32")
    height, width = case["size"]
    generator = torch.Generator().manual_seed(0)
    pixels = torch.rand(case["batch"], 3, height, width, generator=generator).to(device)

    def synchronize():
        if device.type == "cuda":
            torch.cuda.synchronize()

    if case["kind"] == "onnxruntime":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = case["threads"]
        session = onnxruntime.InferenceSession(case["onnx"], options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: pixels.numpy()}
        step = lambda: session.run(None, feed)  # noqa: E731
    else:
        model, forward = build_model(case)
        model.to(device)
        if case["kind"] == "train":
            model.train()
            labels = torch.rand(pixels.shape, generator=generator).to(device)
            optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4)

            def step():
                optimizer.zero_grad(set_to_none=True)
                with autocast:
                    if case["impl"] == "official":  # the official train script's loss
                        from mirage_hf.losses import fourier_l1_loss

                        output, contrastive = forward(pixels)
                        loss = torch.nn.functional.l1_loss(output, labels) + 0.1 * fourier_l1_loss(output, labels)
                        loss = loss + contrastive
                    else:
                        loss = forward(pixels, labels)[1].loss
                loss.backward()
                optimizer.step()
        else:
            model.eval()
            if case["kind"] == "tiled":
                from mirage_hf.inference import restore

                def step():
                    with autocast:
                        restore(model, pixels, tile_size=case["tile_size"], tile_batch_size=case["tile_batch"])
            else:

                @torch.no_grad()
                def step():
                    with autocast:
                        forward(pixels)

    timings = []
    for index in range(case["warmup"] + case["repeats"]):
        synchronize()
        start = time.perf_counter()
        step()
        synchronize()
        if index == 0:
            first_call = time.perf_counter() - start  # includes compilation, where the case compiles
        if index >= case["warmup"]:
            timings.append(time.perf_counter() - start)
    result = {"latency_s": statistics.median(timings), "timings_s": timings, "first_call_s": first_call}
    if device.type == "cuda":
        result["peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:  # ru_maxrss is in KiB on Linux
        result["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


# ----------------------------------------------------------------------------------------------- driver (parent)


def spawn(case: dict, timeout: float) -> dict:
    if case["device"].startswith("cuda"):  # in this process: the GPU's peak counter is reset per case
        import gc

        try:
            return run_case(case)
        except Exception as error:  # noqa: BLE001 - one case failing (out of memory, say) must not end the run
            return {"error": f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"}
        finally:
            gc.collect()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH")])))
    command = [sys.executable, __file__, "--case", json.dumps(case)]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if completed.returncode != 0:
        lines = (completed.stderr or completed.stdout).strip().splitlines()
        return {"error": lines[-1] if lines else f"exit code {completed.returncode}"}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def export_onnx_for(variant: str, official: str | None, directory: str) -> str:
    """Export the variant (official weights when given) once, in a subprocess, for the onnxruntime cases."""
    path = str(Path(directory) / f"mirage-{variant}.onnx")
    code = (
        "import sys, json; sys.argv=['x']; from benchmark import build_model; from mirage_hf.export import export_onnx; "
        f"model, _ = build_model(json.loads({json.dumps(json.dumps({'impl': 'ours', 'variant': variant, 'official': official}))})); "
        f"export_onnx(model, {path!r})"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT / "src"), str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)
    return path


def machine_description(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name()
    model_name = platform.processor() or "unknown CPU"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model_name = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{model_name}, {os.cpu_count()} logical cores"


def cpu_kernels_available() -> bool:
    """Whether our CPU rows ran with the hand-written kernels (`mirage_hf.cpu_kernels`), checked in a subprocess as
    the cases run."""
    code = "from mirage_hf import cpu_kernels; print(cpu_kernels.available())"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return result.stdout.strip() == "True"


def parse_size(text: str) -> tuple[int, int]:
    height, _, width = text.partition("x")
    return int(height), int(width or height)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--official", help="path to a checkout of the official repository (Amazingren/MIRAGE)")
    parser.add_argument("--variants", nargs="+", default=["tiny", "small"], choices=["tiny", "small"])
    parser.add_argument("--sizes", nargs="*", default=["256", "512"], help="inference sizes, N or HxW (none: no inference rows)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case and round")
    parser.add_argument("--rounds", type=int, default=1, help="run every case this many times, in fresh processes")
    parser.add_argument("--official-retained", action="store_true", help="also run the official code with glibc keeping freed memory")
    parser.add_argument("--train-repeats", type=int, default=3)
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--train-sizes", nargs="+", default=["128"], help="training patch sizes, N or HxW")
    parser.add_argument("--train-variants", nargs="+", default=["tiny"], choices=["tiny", "small"])
    parser.add_argument("--train-checkpointing", nargs="*", default=["all", "high_resolution"], choices=["all", "high_resolution"],
                        help="our extra training rows with activation checkpointing (none: only the plain rows)")
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument("--tiled", default="2160x3840", help="photo size for tiled inference ('' to skip)")
    parser.add_argument("--tile-size", type=int, default=512)
    parser.add_argument("--tile-batch", type=int, default=1)
    parser.add_argument("--onnx", action="store_true", help="also time onnxruntime (CPU) at the inference sizes")
    parser.add_argument("--onnx-variants", nargs="+", default=["tiny"], choices=["tiny", "small"])
    parser.add_argument("--compile", action="store_true", help="also time our model under torch.compile (inference rows)")
    parser.add_argument("--cudnn-benchmark", action="store_true", help="GPU: let cuDNN pick its fastest algorithms per shape")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--output", default=str(REPO_ROOT / "benchmarks" / "results" / "latest.json"))
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return 0

    gpu = args.device.startswith("cuda")
    base = {"device": args.device, "dtype": args.dtype, "threads": args.threads, "official": args.official,
            "warmup": 3 if gpu else 1, "cudnn_benchmark": args.cudnn_benchmark}
    implementations = [dict(impl="ours", label="ours", retain=True)]
    if args.official:
        implementations.append(dict(impl="official", label="official", retain=False))
        if args.official_retained:
            implementations.append(dict(impl="official", label="official+retained allocator", retain=True))
    groups = []  # cases measured together, interleaved round by round
    for variant in args.variants:
        for size in map(parse_size, args.sizes):
            compiled = [dict(impl="ours", label="ours+torch.compile", retain=True, compile=True)] if args.compile else []
            group = [dict(base, **impl, variant=variant, kind="infer", size=size, batch=1, repeats=args.repeats)
                     for impl in implementations + compiled]
            if args.onnx and args.device == "cpu" and variant in args.onnx_variants:
                group.append(dict(base, impl="onnxruntime", label="onnxruntime", variant=variant, kind="onnxruntime", size=size,
                                  batch=1, repeats=args.repeats))
            groups.append(group)
    if args.tiled:
        groups.append([dict(base, impl="ours", label="ours", retain=True, variant="tiny", kind="tiled", size=parse_size(args.tiled),
                            batch=1, repeats=1, warmup=0, tile_size=args.tile_size, tile_batch=args.tile_batch)])
    if not args.no_train:
        checkpointing_labels = {"all": "ours+checkpointing", "high_resolution": "ours+high-res checkpointing"}
        training = implementations + [dict(impl="ours", label=checkpointing_labels[mode], retain=True, checkpointing=mode)
                                      for mode in args.train_checkpointing]
        for variant in args.train_variants:
            for size in map(parse_size, args.train_sizes):
                groups.append([dict(base, **impl, variant=variant, kind="train", size=size, batch=args.train_batch,
                                    repeats=args.train_repeats) for impl in training])

    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        onnx_files = {}
        for group in groups:
            group_rows = [dict(case) for case in group]
            rows.extend(group_rows)
            for round_index in range(args.rounds):
                order = range(len(group)) if round_index % 2 == 0 else reversed(range(len(group)))
                for index in order:
                    case = group[index]
                    if case["kind"] == "onnxruntime" and case["variant"] not in onnx_files:
                        onnx_files[case["variant"]] = export_onnx_for(case["variant"], args.official, directory)
                    if case["kind"] == "onnxruntime":
                        case["onnx"] = onnx_files[case["variant"]]
                    print(f"round {round_index + 1}/{args.rounds}: {case['label']} {case['variant']} {case['kind']} "
                          f"{case['size']} ...", file=sys.stderr, flush=True)
                    merge_result(group_rows[index], spawn(case, args.timeout))
                    write_report(rows, args, argv, load_before, final=False)  # partial results survive an interrupted run
    print(write_report(rows, args, argv, load_before, final=True))
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def merge_result(row: dict, result: dict) -> None:
    """Pool one more round into a row: every timing kept, latency their median, peak memory the largest."""
    if "error" in result or "error" in row:
        row.setdefault("error", result.get("error"))
        return
    row["timings_s"] = row.get("timings_s", []) + result["timings_s"]
    row["latency_s"] = statistics.median(row["timings_s"])
    row["peak_memory_mb"] = max(row.get("peak_memory_mb", 0.0), result["peak_memory_mb"])
    row["first_call_s"] = max(row.get("first_call_s", 0.0), result["first_call_s"])
    row["rounds"] = row.get("rounds", 0) + 1


def write_report(rows: list[dict], args: argparse.Namespace, argv: list[str] | None, load_before, final: bool) -> str:
    """Add labels, ratios against the official row of the same kind, variant and size, and MP/s; write the JSON."""
    for row in rows:
        if "latency_s" not in row and "error" not in row:
            continue  # not measured yet
        official = next((other for other in rows if other["label"] == "official" and other["kind"] == row["kind"]
                         and other["variant"] == row["variant"] and other["size"] == row["size"] and "latency_s" in other), None)
        if official and "error" not in row and row is not official:
            row["speedup_vs_official"] = official["latency_s"] / row["latency_s"]
            row["memory_vs_official"] = row["peak_memory_mb"] / official["peak_memory_mb"]
        if "error" not in row:
            row["megapixels_per_s"] = row["batch"] * row["size"][0] * row["size"][1] / 1e6 / row["latency_s"]
    table = format_table(rows)
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "complete": final,
        "machine": machine_description(args.device),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "torch": __import__("torch").__version__,
        **({"cpu_kernels": cpu_kernels_available()} if args.device == "cpu" else {}),
        **({"cudnn_benchmark": args.cudnn_benchmark, "cudnn_allow_tf32": __import__("torch").backends.cudnn.allow_tf32,
            "matmul_precision": __import__("torch").get_float32_matmul_precision()} if args.device.startswith("cuda") else {}),
        "command": " ".join(["python", "benchmarks/benchmark.py", *(argv if argv is not None else sys.argv[1:])]),
        "rows": rows,
        "table": table,
    }
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_suffix(".tmp")
    temporary.write_text(json.dumps(report, indent=2) + "\n")
    temporary.replace(output)
    return table


def format_table(rows: list[dict]) -> str:
    header = ("variant", "kind", "size", "device", "dtype", "median s", "MP/s", "peak MB", "speed vs official", "memory vs official")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        if "latency_s" not in row and "error" not in row:
            continue
        kind = row["kind"] if row["kind"] != "train" else f"train step (batch {row['batch']}, AdamW)"
        if row.get("compile"):
            kind = f"infer (compiling: first call {row['first_call_s']:.0f} s)"
        if row["kind"] == "tiled":
            kind = f"tiled ({row['tile_size']} px tiles)"
        size = f"{row['size'][0]}×{row['size'][1]}"
        name = f"{row['label']} {row['variant']}"
        if "error" in row:
            lines.append(f"| {name} | {kind} | {size} | {row['device']} | {row['dtype']} | error: {row['error']} | | | | |")
            continue
        speed = f"{row['speedup_vs_official']:.2f}×" if "speedup_vs_official" in row else ""
        memory = f"{row['memory_vs_official']:.2f}×" if "memory_vs_official" in row else ""
        lines.append(f"| {name} | {kind} | {size} | {row['device']} | {row['dtype']} | {row['latency_s']:.3f} | "
                     f"{row['megapixels_per_s']:.3f} | {row['peak_memory_mb']:.0f} | {speed} | {memory} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
