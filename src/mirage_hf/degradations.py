"""Synthetic degradations: turn clean photos into (degraded, clean) training pairs.

Every degradation takes an image and returns one of the same kind:

- a PIL image (returned as an RGB PIL image of the same size),
- a uint8 ``H×W×3`` numpy array (returned as uint8),
- a float ``H×W×3`` numpy array in [0, 1] (returned as float32),
- a float torch tensor ``[3, H, W]`` or ``[B, 3, H, W]`` in [0, 1] (same shape, dtype and device; every
  sample of a batch gets its own random parameters).

Randomness comes only from ``seed``: an int, a ``numpy.random.Generator``, a ``numpy.random.SeedSequence``
or a ``torch.Generator`` (one int is drawn from it). The same seed gives the same output bit for bit; a
Generator is advanced, so consecutive calls with one Generator differ. ``None`` draws fresh entropy.
Parameters left at ``None`` are drawn per sample from the default range below; a number fixes them.
The work is done by torch ops (``conv2d``, ``interpolate``, FFTs); what is written by hand here (streak and
camera-shake kernels, the depth proxy) is there because no allowed library synthesises these degradations
(torchvision, kornia, albumentations and timm are not dependencies of this project).

Parameter ranges (defaults drawn uniformly; lengths in pixels unless stated):

======================  ==========================================================================
kind                    parameters
======================  ==========================================================================
``noise``               ``sigma`` in 0-255 units, one of (15, 25, 50); the paper's protocol, exactly:
                        ``np.clip(clean_uint8 + randn * sigma, 0, 255).astype(uint8)`` (truncation).
``rain``                ``amount`` [0.3, 1] (streak seeds per canvas pixel = 0.005 * amount), ``length``
                        [0.05, 0.2] of the shorter side, ``angle`` [-30, 30] degrees from vertical,
                        ``width`` [1, 2.5], streak brightness [0.3, 0.8]; screen-blended.
``snow``                ``amount`` [0.3, 1]; two flake layers (far: width [1.5, 2.5], near: width
                        [3, 5]), ``angle`` [-45, 45], a short motion blur, a white veil [0, 0.15].
``haze``                ``beta`` [0.6, 2.0], ``airlight`` A [0.7, 1.0], depth proxy d in [0.2, 1].
``blur``                ``kernel_size`` odd in [7, 31]; a camera-shake trajectory kernel.
``lowlight``            ``exposure`` [0.05, 0.35], ``gamma`` [1.2, 2.0], ``shot_noise`` [1e-4, 1e-3],
                        ``read_noise`` [2e-3, 1e-2]; or one ``strength`` in [0, 1].
======================  ==========================================================================

Rain and snow are rendered on a canvas whose long side is at most 512 pixels and resized to the image,
so streaks keep their look on large photos. Compositions (the CDD-11 kinds ``low_haze``, ``low_rain``,
``low_snow``, ``haze_rain``, ``haze_snow``, ``low_haze_rain``, ``low_haze_snow``) apply their parts in
physical order: haze (the atmosphere between scene and camera), then rain or snow (in front of the
camera), then low light (exposure and sensor noise, last). ``low`` (CDD-11's name) is an alias of ``lowlight``,
so every CDD-11 kind (`mirage_hf.data.CDD11_KINDS`) is a kind here.

One-knob controls (e.g. for sliders): `add_noise` ``sigma`` 0-100, `add_rain` / `add_snow` ``amount`` 0-1,
`add_haze` ``beta`` 0-3, `add_motion_blur` ``kernel_size`` 1-63 (1 = none), `add_lowlight` ``strength`` 0-1.
`DEGRADATIONS` maps every kind to its function, `degrade(image, kind, seed, **params)` calls one,
`task_of(kind)` gives the dataset task (noise* -> denoise, rain -> derain, haze -> dehaze, blur -> deblur,
lowlight/low -> lowlight, snow and compositions -> composite) and `synthesize_dataset` builds paired rows.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .data import IMAGE_EXTENSIONS, NOISE_SIGMAS, mirage_features
from .errors import MirageError

SeedLike = int | np.random.Generator | np.random.SeedSequence | torch.Generator | None

DEFAULT_KINDS = ("noise_15", "noise_25", "noise_50", "rain", "haze", "blur", "lowlight")
DEFAULT_SIGMAS = NOISE_SIGMAS  # (15, 25, 50)
_RENDER_SIDE = 512  # long side of the canvas rain and snow are drawn on


# ---------------------------------------------------------------------------------------------------
# Seeds and image conversion
# ---------------------------------------------------------------------------------------------------


def as_generator(seed: SeedLike) -> np.random.Generator:
    """A numpy Generator from any accepted seed (a Generator is returned as is, so it is advanced)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, torch.Generator):
        return np.random.default_rng(int(torch.randint(2**62, (1,), generator=seed)))
    return np.random.default_rng(seed)


def _to_batch(image) -> tuple[torch.Tensor, Callable[[torch.Tensor], object]]:
    """Image -> (float32 batch [B, 3, H, W] in [0, 1], function turning a batch back into the input's kind)."""
    if isinstance(image, torch.Tensor):
        if not image.is_floating_point() or image.ndim not in (3, 4) or image.shape[-3] != 3:
            raise ValueError(f"expected a float tensor [3,H,W] or [B,3,H,W], got {image.dtype} {tuple(image.shape)}")
        batch = image if image.ndim == 4 else image[None]
        dtype, squeeze = image.dtype, image.ndim == 3
        return batch.float(), lambda out: (out[0] if squeeze else out).to(dtype)
    if isinstance(image, Image.Image):
        array = np.asarray(image.convert("RGB"))
        return _to_batch(array)[0], lambda out: Image.fromarray(_to_uint8(out[0]))
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an H×W×3 array, got shape {image.shape}")
        if image.dtype == np.uint8:
            batch = torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
            return batch, lambda out: _to_uint8(out[0])
        if np.issubdtype(image.dtype, np.floating):
            batch = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
            return batch, lambda out: out[0].permute(1, 2, 0).numpy()
        raise ValueError(f"expected a uint8 or float array, got {image.dtype}")
    raise TypeError(f"expected a PIL image, a numpy array or a torch tensor, got {type(image).__name__}")


def _to_uint8(chw: torch.Tensor) -> np.ndarray:
    """[3, H, W] float in [0, 1] -> H×W×3 uint8, rounded."""
    return (chw.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def _apply(image, batch_fn: Callable[..., torch.Tensor], seed: SeedLike, **params):
    """Run `batch_fn(batch [B,3,H,W], rng, **params)` on any accepted image kind."""
    batch, back = _to_batch(image)
    with torch.no_grad():
        return back(batch_fn(batch, as_generator(seed), **params))


def _draw(rng: np.random.Generator, value, low: float, high: float) -> float:
    """`value` if given, else one uniform draw from [low, high]."""
    return float(value) if value is not None else float(rng.uniform(low, high))


def _numpy_to(array: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(array).to(device=like.device, dtype=like.dtype)


# ---------------------------------------------------------------------------------------------------
# Gaussian noise (the paper's protocol)
# ---------------------------------------------------------------------------------------------------


def _noise(batch: torch.Tensor, rng, sigma=DEFAULT_SIGMAS) -> torch.Tensor:
    out = torch.empty_like(batch)
    for b, image in enumerate(batch):
        s = float(rng.choice(sigma)) if isinstance(sigma, Sequence) else float(sigma)
        clean = (image.permute(1, 2, 0).double().cpu().numpy() * 255).round()  # H×W×3, the uint8 values
        noisy = np.clip(clean + rng.standard_normal(clean.shape) * s, 0, 255).astype(np.uint8)
        out[b] = _numpy_to(noisy.astype(np.float32) / 255.0, batch).permute(2, 0, 1)
    return out


def add_noise(image, sigma: float | Sequence[float] = DEFAULT_SIGMAS, seed: SeedLike = None):
    """Additive white Gaussian noise exactly as the paper's code adds it.

    ``noisy = np.clip(clean_uint8 + randn(H, W, 3) * sigma, 0, 255).astype(np.uint8)``: the cast truncates.
    Float inputs are first rounded to uint8 values and the result is returned as float (``noisy / 255``),
    so a batch gives the same pixels as the same images passed one by one.

    Args:
        sigma: standard deviation in 0-255 units (slider range 0-100), or a sequence to draw one from
            per sample (default ``(15, 25, 50)``).
        seed: see the module docstring. A ``numpy.random.RandomState`` is also accepted: with a fixed
            ``sigma``, ``RandomState(0)`` reproduces the noise of ``np.random.seed(0); np.random.randn``.
    """
    if isinstance(seed, np.random.RandomState):
        batch, back = _to_batch(image)
        return back(_noise(batch, seed, sigma=sigma))
    return _apply(image, _noise, seed, sigma=sigma)


# ---------------------------------------------------------------------------------------------------
# Rain and snow: bright streaks, motion-blurred along their angle, screen-blended
# ---------------------------------------------------------------------------------------------------


def _streak_kernel(height: int, width: int, length: float, angle: float, thickness: float) -> torch.Tensor:
    """A line segment of the given length, angle (degrees from vertical) and thickness, as an antialiased
    [height, width] kernel in wrapped (FFT) coordinates: pixel (0, 0) is the segment's centre."""
    ys = torch.fft.fftfreq(height, 1 / height)[:, None]  # 0, 1, ..., -1: wrapped offsets
    xs = torch.fft.fftfreq(width, 1 / width)[None, :]
    dx, dy = math.sin(math.radians(angle)), math.cos(math.radians(angle))
    along = (xs * dx + ys * dy).clamp(-length / 2, length / 2)
    distance = torch.hypot(xs - along * dx, ys - along * dy)
    return (thickness / 2 + 0.5 - distance).clamp(0, 1)


def _streak_layer(seeds: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Stamp `kernel` at every seed (brightness = seed value); [h, w] each, circular FFT convolution.

    FFT rather than conv2d because rain kernels reach ~100 px; wrap-around is harmless as seeds are
    stationary noise."""
    return torch.fft.irfft2(torch.fft.rfft2(seeds) * torch.fft.rfft2(kernel), s=seeds.shape).clamp(0, 1)


def _canvas_size(height: int, width: int) -> tuple[int, int]:
    scale = min(1.0, _RENDER_SIDE / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _random_seeds(rng, shape, density: float, low: float = 0.5, high: float = 1.0) -> torch.Tensor:
    hits = rng.random(shape) < density
    return torch.from_numpy((hits * rng.uniform(low, high, shape)).astype(np.float32))


def _screen(batch: torch.Tensor, layers: torch.Tensor) -> torch.Tensor:
    """Screen blend of [B, 1, h, w] layers in [0, 1] onto the batch (resized to it): 1 - (1-x)(1-L)."""
    layers = F.interpolate(layers.to(batch.device), size=batch.shape[-2:], mode="bilinear", align_corners=False)
    return 1 - (1 - batch) * (1 - layers.clamp(0, 1))


def _rain(batch, rng, amount=None, length=None, angle=None, width=None):
    h, w = _canvas_size(*batch.shape[-2:])
    layers = []
    for _ in range(batch.shape[0]):
        a = _draw(rng, amount, 0.3, 1.0)
        l = _draw(rng, length, 0.05, 0.2) * min(h, w)
        kernel = _streak_kernel(h, w, l, _draw(rng, angle, -30, 30), _draw(rng, width, 1.0, 2.5))
        layers.append(_streak_layer(_random_seeds(rng, (h, w), 0.005 * a, 0.3, 0.8), kernel))
    return _screen(batch, torch.stack(layers)[:, None])


def add_rain(image, amount: float | None = None, length: float | None = None, angle: float | None = None,
             width: float | None = None, seed: SeedLike = None):
    """Rain streaks: random seed points stamped with a line kernel (a motion blur along the fall angle),
    screen-blended onto the image (brightens only, clipped to [0, 1]).

    Args:
        amount: rain amount in [0, 1] (slider); streak seeds per canvas pixel = 0.005 * amount.
            Default [0.3, 1].
        length: streak length as a fraction of the shorter canvas side; default [0.05, 0.2].
        angle: degrees from vertical; default [-30, 30].
        width: streak width in canvas pixels; default [1, 2.5]. Each streak's brightness is drawn from [0.3, 0.8].
    """
    return _apply(image, _rain, seed, amount=amount, length=length, angle=angle, width=width)


def _snow(batch, rng, amount=None, angle=None):
    h, w = _canvas_size(*batch.shape[-2:])
    layers, veils = [], []
    for _ in range(batch.shape[0]):
        a, theta = _draw(rng, amount, 0.3, 1.0), _draw(rng, angle, -45, 45)
        layer = torch.zeros(h, w)
        for density, (w_low, w_high) in ((0.004, (1.5, 2.5)), (0.0008, (3.0, 5.0))):  # far, near flakes
            fall = rng.uniform(0, 0.02) * min(h, w)
            kernel = _streak_kernel(h, w, fall, theta, rng.uniform(w_low, w_high))
            layer = torch.maximum(layer, _streak_layer(_random_seeds(rng, (h, w), density * a, 0.7, 1.0), kernel))
        layers.append(layer)
        veils.append(rng.uniform(0, 0.15) * a)
    veil = torch.tensor(veils, dtype=batch.dtype, device=batch.device)[:, None, None, None]
    return _screen(batch * (1 - veil) + 0.9 * veil, torch.stack(layers)[:, None])


def add_snow(image, amount: float | None = None, angle: float | None = None, seed: SeedLike = None):
    """Snow: two layers of flakes (small far ones, large near ones), each with a short fall blur, over a faint
    white veil; screen-blended.

    Args:
        amount: snow amount in [0, 1] (slider); far flakes 0.004 * amount, near 0.0008 * amount per canvas
            pixel, veil up to 0.15 * amount. Default [0.3, 1].
        angle: fall direction, degrees from vertical; default [-45, 45].
    """
    return _apply(image, _snow, seed, amount=amount, angle=angle)


# ---------------------------------------------------------------------------------------------------
# Haze: atmospheric scattering I = J t + A (1 - t), t = exp(-beta d)
# ---------------------------------------------------------------------------------------------------


def depth_proxy(batch: torch.Tensor, seed: SeedLike = None) -> torch.Tensor:
    """A smooth pseudo-depth in [0.2, 1] (1 = far), [B, 1, H, W]: a random mix of a top-to-bottom gradient
    (the sky is far), a smooth random field and the blurred luminance (bright regions are often far),
    computed on a coarse grid (long side 32) and upsampled bilinearly."""
    rng = as_generator(seed)
    height, width = batch.shape[-2:]
    scale = min(1.0, 32 / max(height, width))
    h, w = max(2, round(height * scale)), max(2, round(width * scale))
    small = F.interpolate(batch, size=(h, w), mode="area")
    luminance = (small * torch.tensor([0.299, 0.587, 0.114], device=batch.device)[:, None, None]).sum(1, keepdim=True)
    luminance = F.avg_pool2d(luminance, 3, stride=1, padding=1, count_include_pad=False)
    gradient = torch.linspace(1, 0, h, device=batch.device)[:, None].expand(h, w)
    depths = []
    for b in range(batch.shape[0]):
        field = torch.from_numpy(rng.standard_normal((1, 1, 4, 4)).astype(np.float32))
        field = F.interpolate(field, size=(h, w), mode="bicubic", align_corners=True)[0, 0].to(batch.device)
        weights = rng.uniform([0.4, 0.2, 0.1], [0.8, 0.5, 0.4])
        mix = weights[0] * gradient + weights[1] * _unit(field) + weights[2] * _unit(luminance[b, 0])
        depths.append(0.2 + 0.8 * _unit(mix))
    return F.interpolate(torch.stack(depths)[:, None], size=(height, width), mode="bilinear", align_corners=False)


def _unit(x: torch.Tensor) -> torch.Tensor:
    """Min-max rescale to [0, 1] (a constant gives 0.5)."""
    span = x.max() - x.min()
    return (x - x.min()) / span if span > 0 else torch.full_like(x, 0.5)


def _haze(batch, rng, beta=None, airlight=None, depth=None):
    betas = torch.tensor([_draw(rng, beta, 0.6, 2.0) for _ in batch], dtype=batch.dtype)
    lights = torch.tensor([_draw(rng, airlight, 0.7, 1.0) for _ in batch], dtype=batch.dtype)
    if depth is None:
        depth = depth_proxy(batch, rng)
    depth = torch.as_tensor(depth, dtype=batch.dtype, device=batch.device)
    transmission = torch.exp(-betas.to(batch.device)[:, None, None, None] * depth)
    return (batch * transmission + lights.to(batch.device)[:, None, None, None] * (1 - transmission)).clamp(0, 1)


def add_haze(image, beta: float | None = None, airlight: float | None = None, depth=None, seed: SeedLike = None):
    """Haze by the atmospheric scattering model ``I = J t + A (1 - t)``, ``t = exp(-beta d)``.

    Args:
        beta: scattering coefficient per unit depth (slider 0-3); default [0.6, 2.0].
        airlight: atmospheric light A (grey, same for R, G, B); default [0.7, 1.0].
        depth: a depth map ``d`` broadcastable to [B, 1, H, W] (a number, an H×W array or a tensor);
            default the smooth proxy of `depth_proxy`, in [0.2, 1].
    """
    return _apply(image, _haze, seed, beta=beta, airlight=airlight, depth=depth)


# ---------------------------------------------------------------------------------------------------
# Motion blur: camera-shake kernels
# ---------------------------------------------------------------------------------------------------


def motion_blur_kernel(size: int, seed: SeedLike = None) -> np.ndarray:
    """A random camera-shake kernel, [size, size] float32 summing to 1.

    A 2-D random walk with inertia and occasional jerks (after Boracchi & Foi, 2012) is scaled to span
    50-100 % of the kernel and rasterised with bilinear splatting.
    """
    rng = as_generator(seed)
    if size < 1:
        raise ValueError(f"kernel size must be >= 1, got {size}")
    steps = max(16, 4 * size)
    velocity = rng.standard_normal(2)
    positions = np.zeros((steps, 2))
    for t in range(1, steps):
        velocity = 0.9 * velocity + 0.3 * rng.standard_normal(2) - 0.02 * positions[t - 1]
        if rng.random() < 0.05:  # a jerk
            velocity += 2 * rng.standard_normal(2)
        positions[t] = positions[t - 1] + velocity
    positions -= (positions.max(0) + positions.min(0)) / 2
    extent = np.abs(positions).max()
    if extent > 0:
        positions *= rng.uniform(0.5, 1.0) * (size - 1) / 2 / extent
    positions += (size - 1) / 2
    kernel = np.zeros((size + 1, size + 1))
    base = np.floor(positions).astype(int)
    frac = positions - base
    for (dy, dx), weight in (((0, 0), (1 - frac[:, 0]) * (1 - frac[:, 1])), ((0, 1), (1 - frac[:, 0]) * frac[:, 1]),
                             ((1, 0), frac[:, 0] * (1 - frac[:, 1])), ((1, 1), frac[:, 0] * frac[:, 1])):
        np.add.at(kernel, (base[:, 0] + dy, base[:, 1] + dx), weight)
    kernel = kernel[:size, :size]
    return (kernel / kernel.sum()).astype(np.float32)


def blur_with_kernels(batch: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve each sample of [B, 3, H, W] with its own [B, k, k] kernel, per channel, reflect padding
    (replicate when the image is smaller than the kernel)."""
    b, c, height, width = batch.shape
    k = kernels.shape[-1]
    pad = k // 2
    mode = "reflect" if pad < min(height, width) else "replicate"
    padded = F.pad(batch.reshape(1, b * c, height, width), (pad, k - 1 - pad, pad, k - 1 - pad), mode=mode)
    weight = torch.flip(kernels, (-2, -1)).to(batch).repeat_interleave(c, dim=0)[:, None]  # [B*3, 1, k, k]
    return F.conv2d(padded, weight, groups=b * c).reshape(b, c, height, width)


def _blur(batch, rng, kernel_size=None):
    sizes = [int(kernel_size) if kernel_size is not None else 2 * int(rng.integers(3, 16)) + 1 for _ in batch]
    k = max(sizes)
    kernels = torch.zeros(len(sizes), k, k)
    for b, size in enumerate(sizes):
        offset = (k - size) // 2
        kernels[b, offset:offset + size, offset:offset + size] = torch.from_numpy(motion_blur_kernel(size, rng))
    return blur_with_kernels(batch, kernels).clamp(0, 1)


def add_motion_blur(image, kernel_size: int | None = None, seed: SeedLike = None):
    """Motion blur with a random camera-shake kernel (`motion_blur_kernel`), per channel, reflect padding.

    Args:
        kernel_size: kernel side in pixels (slider 1-63; 1 = no blur); default odd in [7, 31].
    """
    return _apply(image, _blur, seed, kernel_size=kernel_size)


# ---------------------------------------------------------------------------------------------------
# Low light: exposure, gamma and Poisson-Gaussian sensor noise
# ---------------------------------------------------------------------------------------------------


def _lowlight(batch, rng, strength=None, exposure=None, gamma=None, shot_noise=None, read_noise=None):
    out = torch.empty_like(batch)
    for b, image in enumerate(batch):
        if strength is not None:  # one knob: 0 = unchanged, 1 = exposure 0.05, gamma 2, strongest noise
            s = float(strength)
            defaults = (0.05**s, 1 + s, 1e-3 * s, 1e-2 * s)
        else:
            defaults = rng.uniform([0.05, 1.2, 1e-4, 2e-3], [0.35, 2.0, 1e-3, 1e-2])  # exposure, gamma, shot, read
        e, g, shot, read = (float(d) if v is None else float(v)
                            for v, d in zip((exposure, gamma, shot_noise, read_noise), defaults))
        dark = e * image.clamp(0, 1) ** g
        # Poisson-Gaussian noise in its heteroscedastic Gaussian form: variance = shot * signal + read^2.
        noise = _numpy_to(rng.standard_normal(tuple(image.shape)).astype(np.float32), batch)
        out[b] = dark + torch.sqrt(shot * dark + read**2) * noise
    return out.clamp(0, 1)


def add_lowlight(image, strength: float | None = None, exposure: float | None = None, gamma: float | None = None,
                 shot_noise: float | None = None, read_noise: float | None = None, seed: SeedLike = None):
    """Low light: ``dark = exposure * x ** gamma`` plus signal-dependent sensor noise of variance
    ``shot_noise * dark + read_noise ** 2`` (Poisson shot + Gaussian read noise, Foi et al. 2008).

    Args:
        strength: one slider in [0, 1] setting exposure ``0.05 ** strength``, gamma ``1 + strength``,
            shot noise ``1e-3 * strength`` and read noise ``1e-2 * strength``; the other arguments override it.
        exposure: light multiplier; default [0.05, 0.35].
        gamma: > 1 darkens mid-tones more than highlights; default [1.2, 2.0].
        shot_noise: shot-noise gain; default [1e-4, 1e-3].
        read_noise: read-noise standard deviation; default [2e-3, 1e-2].
    """
    return _apply(image, _lowlight, seed, strength=strength, exposure=exposure, gamma=gamma,
                  shot_noise=shot_noise, read_noise=read_noise)


# ---------------------------------------------------------------------------------------------------
# Registry, compositions and `degrade`
# ---------------------------------------------------------------------------------------------------

_BATCH_FUNCTIONS = {"noise": _noise, "rain": _rain, "snow": _snow, "haze": _haze, "blur": _blur, "lowlight": _lowlight}
_PHYSICAL_ORDER = ("haze", "rain", "snow", "lowlight")  # scene -> atmosphere -> precipitation -> sensor
_PARTS = {"low": "lowlight", "haze": "haze", "rain": "rain", "snow": "snow"}


def _composite(kind: str):
    parts = sorted((_PARTS[p] for p in kind.split("_")), key=_PHYSICAL_ORDER.index)

    def apply(image, seed: SeedLike = None):
        def chain(batch, rng):
            for part in parts:
                batch = _BATCH_FUNCTIONS[part](batch, rng)
            return batch

        return _apply(image, chain, seed)

    apply.__doc__ = f"The CDD-11 composition {kind!r}: {' -> '.join(parts)}, default parameter ranges."
    return apply


def _fixed_noise(sigma: int):
    def apply(image, seed: SeedLike = None):
        return add_noise(image, sigma=sigma, seed=seed)

    apply.__doc__ = f"Gaussian noise with sigma = {sigma} (the paper's protocol)."
    return apply


COMPOSITE_KINDS = ("low_haze", "low_rain", "low_snow", "haze_rain", "haze_snow", "low_haze_rain", "low_haze_snow")

DEGRADATIONS: dict[str, Callable] = {
    "noise": add_noise,
    **{f"noise_{sigma}": _fixed_noise(sigma) for sigma in DEFAULT_SIGMAS},
    "rain": add_rain,
    "snow": add_snow,
    "haze": add_haze,
    "blur": add_motion_blur,
    "lowlight": add_lowlight,
    "low": add_lowlight,
    **{kind: _composite(kind) for kind in COMPOSITE_KINDS},
}
"""Every kind -> a function ``f(image, seed=None, **params)``; only single kinds take parameters."""

_TASKS = {"rain": "derain", "haze": "dehaze", "blur": "deblur", "lowlight": "lowlight", "low": "lowlight"}


def task_of(kind: str) -> str:
    """The schema's task name for a kind: noise* -> denoise, ..., snow and compositions -> composite."""
    return "denoise" if kind.startswith("noise") else _TASKS.get(kind, "composite")


def degrade(image, kind: str, seed: SeedLike = None, **params):
    """Apply the degradation `kind` (a key of `DEGRADATIONS`) with `seed` and optional parameters."""
    if kind not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {kind!r}; choose from {', '.join(DEGRADATIONS)}")
    return DEGRADATIONS[kind](image, seed=seed, **params)


# ---------------------------------------------------------------------------------------------------
# Clean images -> paired dataset
# ---------------------------------------------------------------------------------------------------


def _folder_images(folder: Path) -> list[tuple[str, Path]]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    return [(p.relative_to(folder).with_suffix("").as_posix().replace("/", "_"), p) for p in files]


def _image_column(dataset) -> str:
    import datasets

    for name, feature in dataset.features.items():
        if isinstance(feature, datasets.Image):
            return name
    raise MirageError(f"the dataset has no image column (columns: {', '.join(dataset.column_names)})")


def _resize(image: Image.Image, max_size: int | None) -> Image.Image:
    image = image.convert("RGB")
    if max_size and max(image.size) > max_size:
        scale = max_size / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.BICUBIC)
    return image


def row_seed(seed: int, image_index: int, kind: str, variant: int) -> np.random.SeedSequence:
    """The SeedSequence of one row: depends only on (seed, image index, kind name, variant)."""
    return np.random.SeedSequence(seed, spawn_key=(image_index, zlib.crc32(kind.encode()), variant))


def synthesize_dataset(source, kinds: Sequence[str] | None = None, seed: int = 0, num_variants: int = 1,
                       max_size: int | None = None, split: str = "train", source_name: str | None = None,
                       cache_dir: str | None = None):
    """Turn clean images into a paired `datasets.Dataset` with the project's schema.

    Args:
        source: a folder of clean images (searched recursively, sorted by path), a `datasets.Dataset`
            with an Image column, or a dataset id / local path for `datasets.load_dataset` (`split`).
        kinds: keys of `DEGRADATIONS`; default `DEFAULT_KINDS` (noise 15/25/50, rain, haze, blur, lowlight).
        seed: the row for (image i, kind k, variant v) depends only on (seed, i, k, v): see `row_seed`.
        num_variants: degraded versions per image and kind.
        max_size: if set, clean images are first resized (bicubic) so that their long side is at most this.
        source_name: the `source` column; default ``synthetic:<folder name or dataset name>``.
        cache_dir: the `datasets` cache for the generated Arrow files (default: the `datasets` cache; a
            rerun with the same inputs, files and code reuses it).

    Returns:
        rows ``input`` (degraded), ``target`` (clean, resized), ``task``, ``degradation`` (the kind),
        ``source`` and ``id`` (``<file stem>_<kind>_<variant>``; nested folders joined with ``_``), ordered by
        image, then kind, then variant.
    """
    import datasets

    kinds = tuple(DEFAULT_KINDS if kinds is None else kinds)
    unknown = [k for k in kinds if k not in DEGRADATIONS]
    if unknown or not kinds:
        raise MirageError(f"unknown degradation kind(s) {', '.join(unknown) or '(none given)'}; "
                     f"choose from {', '.join(DEGRADATIONS)}")
    if num_variants < 1:
        raise MirageError(f"num_variants must be >= 1, got {num_variants}")

    if isinstance(source, (str, Path)) and Path(source).is_dir():
        folder = Path(source)
        items = _folder_images(folder)
        if not items:
            raise MirageError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {folder}")
        unreadable = [str(path) for _, path in items if not _readable(path)]
        if unreadable:
            raise MirageError(f"{len(unreadable)} unreadable image(s): {', '.join(unreadable)}")
        name = source_name or f"synthetic:{folder.resolve().name}"
        stats = [(stem, p.stat().st_size, p.stat().st_mtime_ns) for stem, p in items]
        fingerprint_source = repr((str(folder.resolve()), stats))
        count = len(items)

        def load(i):
            return items[i][0], Image.open(items[i][1])
    else:
        dataset = source if isinstance(source, datasets.Dataset) else _load_dataset(source, split)
        column = _image_column(dataset)
        label = str(source) if isinstance(source, (str, Path)) else dataset.info.dataset_name or "dataset"
        name = source_name or f"synthetic:{label}"
        fingerprint_source = dataset._fingerprint
        count = len(dataset)

        def load(i):
            image = dataset[i][column]
            filename = getattr(image, "filename", "")
            return (Path(filename).stem if filename else f"{i:06d}"), image

    module_hash = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    fingerprint = hashlib.sha256(
        repr((fingerprint_source, kinds, seed, num_variants, max_size, name, module_hash)).encode()).hexdigest()[:32]

    def rows() -> Iterator[dict]:
        for i in range(count):
            stem, image = load(i)
            try:
                clean = _resize(image, max_size)
            except OSError as error:
                raise MirageError(f"cannot read image {stem}: {error}") from error
            for kind in kinds:
                for v in range(num_variants):
                    yield {
                        "input": degrade(clean, kind, seed=row_seed(seed, i, kind, v)),
                        "target": clean,
                        "task": task_of(kind),
                        "degradation": kind,
                        "source": name,
                        "id": f"{stem}_{kind}_{v}",
                    }

    return datasets.Dataset.from_generator(
        rows, features=mirage_features(), fingerprint=fingerprint, cache_dir=cache_dir
    )


def _load_dataset(source, split: str):
    import datasets

    if not isinstance(source, (str, Path)):
        raise MirageError(f"expected a folder, a datasets.Dataset or a dataset id, got {type(source).__name__}")
    try:
        return datasets.load_dataset(str(source), split=split)
    except Exception as error:  # a missing folder, an unknown id, no network: one line for the user
        raise MirageError(f"{source} is neither a folder of images nor a loadable dataset: {error}") from error


def _readable(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.verify()
        return True
    except Exception:
        return False
