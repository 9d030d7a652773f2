"""Hand-written C kernels for the CPU, compiled at first use and cached.

Each replaces a chain of work that PyTorch and oneDNN run as several passes over memory, or with slow
transcendental functions:
- `gated_depthwise` (inference): the middle of the feed-forward network (GELU, 3×3 depthwise conv, GELU and
  product) in one pass, with a rational erf that is 2-4× cheaper than oneDNN's exact-GELU post-op at the same fp32
  accuracy;
- `cross_gate` (inference): the mixer's cross-gating (three sums, sigmoids and scaled sums) in one pass;
- `gelu` (training): the exact GELU as an autograd function whose forward and backward use that erf.
Sources and reasons are in `kernels/`. They are built with the system C compiler (`$CC`, else `cc`) into
`$MIRAGE_KERNEL_CACHE` (default `~/.cache/mirage_hf/kernels`), keyed by the sources, the compiler and the CPU, and
loaded with ctypes; they run on the OpenMP threads PyTorch already uses. Where they cannot be built (no compiler,
no OpenMP, not Linux) or `MIRAGE_CPU_KERNELS=0`, the model keeps its PyTorch and oneDNN path: same results, one
log line, no error.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

KERNELS = Path(__file__).parent / "kernels"
SOURCES = (KERNELS / "gated_depthwise.c", KERNELS / "cross_gate.c", KERNELS / "gelu.c")
HEADERS = (KERNELS / "vector_math.h",)
COMPILE_FLAGS = ("-O3", "-march=native", "-fno-trapping-math", "-fopenmp", "-shared", "-fPIC")


def default_cache_dir() -> Path:
    if os.environ.get("MIRAGE_KERNEL_CACHE"):
        return Path(os.environ["MIRAGE_KERNEL_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mirage_hf" / "kernels"


def _cpu_description() -> str:
    """Model and feature flags: a library built with -march=native must not be loaded on a different CPU."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    wanted = [line for line in lines if line.startswith(("model name", "flags", "Features"))]
    return "\n".join(sorted(set(wanted)))


def build_library(cache_dir: Path | None = None, compiler: str | None = None) -> ctypes.CDLL:
    """Compile (or reuse from the cache) and load the kernels. Raises RuntimeError with the reason on failure."""
    if not sys.platform.startswith("linux"):
        raise RuntimeError("the CPU kernels are built for Linux only")
    if "OpenMP" not in torch.__config__.parallel_info():
        raise RuntimeError("this PyTorch does not run on OpenMP threads")
    compiler = compiler or os.environ.get("CC") or "cc"
    compiler_path = shutil.which(compiler)
    if compiler_path is None:
        raise RuntimeError(f"no C compiler found ({compiler!r})")
    version = subprocess.run([compiler_path, "--version"], capture_output=True, text=True, timeout=30).stdout
    sources = [path.read_bytes() for path in (*SOURCES, *HEADERS)]
    key = hashlib.sha256(b"\0".join([*sources, " ".join(COMPILE_FLAGS).encode(), version.encode(), _cpu_description().encode()]))
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    library_path = cache_dir / f"mirage_kernels-{key.hexdigest()[:16]}.so"
    if not library_path.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache_dir) as build_dir:  # compile aside, then rename: atomic
            built = Path(build_dir) / library_path.name
            result = subprocess.run(
                [compiler_path, *COMPILE_FLAGS, "-o", str(built), *map(str, SOURCES)], capture_output=True, text=True, timeout=120
            )
            if result.returncode != 0:
                message = (result.stderr.strip().splitlines() or ["no output"])[-1]
                raise RuntimeError(f"{compiler} failed: {message}")
            os.replace(built, library_path)
    library = ctypes.CDLL(str(library_path))
    long, pointer = ctypes.c_long, ctypes.c_void_p
    library.mirage_gated_depthwise.argtypes = [pointer, long, long, long, pointer, pointer, long, long, pointer, pointer, ctypes.c_int]
    library.mirage_gated_depthwise.restype = None
    library.mirage_gated_depthwise_scratch_floats.argtypes = [long, long]
    library.mirage_gated_depthwise_scratch_floats.restype = long
    library.mirage_cross_gate.argtypes = [pointer, pointer, pointer, long, long, *(ctypes.c_float,) * 3, pointer, ctypes.c_int]
    library.mirage_cross_gate.restype = None
    for name, pointers in (("mirage_gelu_forward", 2), ("mirage_gelu_backward", 3)):
        getattr(library, name).argtypes = [*(pointer,) * pointers, long, ctypes.c_int]
        getattr(library, name).restype = None
    return library


@functools.cache
def _library() -> ctypes.CDLL | None:
    if os.environ.get("MIRAGE_CPU_KERNELS", "1") == "0":
        return None
    try:
        return build_library()
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        logger.info("mirage_hf: CPU kernels unavailable, using oneDNN only (%s)", error)
        return None


def available() -> bool:
    """True when the kernels are built and loaded (built on the first call)."""
    return _library() is not None


def gated_depthwise(
    projected: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, first: int, last: int
) -> torch.Tensor:
    """GELU(dwconv(GELU(x))[:h]) · dwconv(GELU(x))[h:] for rows [first, last) of one sample's band of rows.

    projected: [1, 2h, rows, W] fp32 (the 1×1 projection's output); weight: [2h, 1, 3, 3]; bias: [2h] or None.
    Rows outside the band are the convolution's zero padding. Returns [1, h, last - first, W], channels-last.
    Call only where `available()`.
    """
    library = _library()
    batch_size, channels, rows, width = projected.shape
    if batch_size != 1 or channels % 2 or tuple(weight.shape) != (channels, 1, 3, 3) or not 0 <= first < last <= rows:
        raise ValueError(f"gated_depthwise: bad shapes {tuple(projected.shape)}, {tuple(weight.shape)}, rows {first}-{last}")
    if any(tensor.dtype != torch.float32 or tensor.device.type != "cpu" for tensor in (projected, weight)):
        raise ValueError("gated_depthwise: fp32 CPU tensors only")
    hidden = channels // 2
    projected = projected.contiguous(memory_format=torch.channels_last)  # [rows, W, 2h] in memory
    taps = weight.detach().reshape(channels, 9).t().contiguous()  # [9, 2h]
    bias = None if bias is None else bias.detach().float().contiguous()
    product = torch.empty((1, hidden, last - first, width), memory_format=torch.channels_last)
    threads = torch.get_num_threads()
    scratch = projected.new_empty(threads * library.mirage_gated_depthwise_scratch_floats(width, hidden))
    library.mirage_gated_depthwise(
        projected.data_ptr(), rows, width, hidden, taps.data_ptr(), None if bias is None else bias.data_ptr(),
        first, last, product.data_ptr(), scratch.data_ptr(), threads,
    )
    return product


def cross_gate(branches: tuple[torch.Tensor, torch.Tensor, torch.Tensor], alphas: tuple[float, float, float]) -> torch.Tensor:
    """[a + α₀·σ(g + m), g + α₁·σ(a + m), m + α₂·σ(a + g)] along the channels, for the attention, gated-conv and
    MLP outputs (a, g, m), each [B, b, H, W] fp32 on the CPU. Returns [B, 3b, H, W], channels-last.
    Call only where `available()`."""
    library = _library()
    shape = branches[0].shape
    if any(branch.shape != shape or branch.dtype != torch.float32 or branch.device.type != "cpu" for branch in branches):
        raise ValueError(f"cross_gate: three fp32 CPU tensors of one shape, got {[tuple(b.shape) for b in branches]}")
    batch_size, channels, height, width = shape
    attention, gated, mlp = (branch.contiguous(memory_format=torch.channels_last) for branch in branches)
    output = torch.empty((batch_size, 3 * channels, height, width), memory_format=torch.channels_last)
    library.mirage_cross_gate(
        attention.data_ptr(), gated.data_ptr(), mlp.data_ptr(), batch_size * height * width, channels,
        *map(float, alphas), output.data_ptr(), torch.get_num_threads(),
    )
    return output


def _dense(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor itself where its elements are one dense block in memory (any order of dimensions), else a dense
    copy (channels-last for feature maps)."""
    if tensor.is_contiguous() or (tensor.dim() == 4 and tensor.is_contiguous(memory_format=torch.channels_last)):
        return tensor
    return tensor.contiguous(memory_format=torch.channels_last if tensor.dim() == 4 else torch.contiguous_format)


class _GELU(torch.autograd.Function):
    """Exact GELU on the C kernels: the forward saves its (dense) input, the backward recomputes Φ and φ from it."""

    @staticmethod
    def forward(ctx, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = _dense(hidden_states)
        output = torch.empty_like(hidden_states)  # same strides: both are read as one flat buffer
        _library().mirage_gelu_forward(hidden_states.data_ptr(), output.data_ptr(), output.numel(), torch.get_num_threads())
        ctx.save_for_backward(hidden_states)
        return output

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        (hidden_states,) = ctx.saved_tensors
        if grad_output.stride() != hidden_states.stride():  # the kernel reads both as flat buffers in one order
            grad_output = torch.empty_like(hidden_states).copy_(grad_output)
        grad_input = torch.empty_like(hidden_states)
        _library().mirage_gelu_backward(
            grad_output.data_ptr(), hidden_states.data_ptr(), grad_input.data_ptr(), grad_input.numel(), torch.get_num_threads()
        )
        return grad_input


def gelu(hidden_states: torch.Tensor) -> torch.Tensor:
    """`F.gelu(hidden_states)` (exact), on the C kernels for fp32 CPU tensors where they are built (backward 1.6×
    as fast as PyTorch's on two cores, forward as fast or faster); `F.gelu` itself everywhere else (other devices
    and dtypes, autocast, torch.compile and export)."""
    usable = (
        hidden_states.device.type == "cpu"
        and hidden_states.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()
        and not torch.compiler.is_exporting()
        and available()
    )
    return _GELU.apply(hidden_states) if usable else F.gelu(hidden_states)
