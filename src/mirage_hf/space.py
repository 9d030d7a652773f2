"""The Gradio demo behind the Hugging Face Space (`spaces/app.py` calls `build_demo`).

Two tabs share one model selector (a bundled model name, a local folder or a Hub id):

- **Restore**: upload or paste a photo, restore it, compare before/after in a PNG `gr.ImageSlider` and download
  the result as a full-resolution PNG. Photos whose long side exceeds `TILE_THRESHOLD` are restored in
  `TILE_SIZE` tiles with a progress bar; photos above `MIRAGE_SPACE_MAX_PIXELS` are refused with a message.
- **Try it**: degrade a clean photo (a bundled example or an upload) with noise / rain / haze / blur / low light
  from `mirage_hf.degradations`, restore it, and report PSNR/SSIM (`mirage_hf.metrics`, paper protocol)
  of the degraded and the restored photo against the clean one.

Nothing heavy happens at import or in `build_demo`: the model is loaded at the first request and cached per
model id. Every failure reaches the page as one `gr.Error` sentence, never a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import html
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .allocator import retain_freed_memory
from .errors import MirageError
from .inference import DEFAULT_MODEL_NAME, bundled_model_names, load_model, resolve_model_path, restore

logger = logging.getLogger(__name__)

MAX_PIXELS = int(os.environ.get("MIRAGE_SPACE_MAX_PIXELS", 4096 * 4096))  # larger uploads are refused
TILE_THRESHOLD = 1024  # photos with a longer side are restored tile by tile
TILE_SIZE = 512
TILE_OVERLAP = 32
PREVIEW_MAX_SIDE = 2048  # the before/after slider shows at most this; the download is always full size
TRY_MAX_SIDE = 768  # try-it photos are downscaled to this long side to keep the demo quick on a CPU
DOWNLOAD_DIR = Path(tempfile.gettempdir()) / "mirage_space"  # restored PNGs before Gradio copies them
LOCAL_MODEL_DIR = "model"  # a model folder shipped inside the Space by `mirage push-space --model FOLDER`


def default_model() -> str:
    """`MIRAGE_SPACE_MODEL` if set, else a `model/` folder beside the app, else the bundled default weights."""
    if os.environ.get("MIRAGE_SPACE_MODEL"):
        return os.environ["MIRAGE_SPACE_MODEL"]
    if (Path(LOCAL_MODEL_DIR) / "config.json").is_file():
        return LOCAL_MODEL_DIR
    return DEFAULT_MODEL_NAME


def model_choices() -> list[str]:
    return list(dict.fromkeys([default_model(), *bundled_model_names()]))


def fail(message: str) -> gr.Error:
    """The one way this app reports a problem: a `gr.Error` modal with plain text (Gradio renders it as HTML)."""
    return gr.Error(html.escape(message, quote=False), print_exception=False)


# ---------------------------------------------------------------------------------------------------
# Model loading (lazy, cached per model id)
# ---------------------------------------------------------------------------------------------------

_load_lock = threading.Lock()


@functools.lru_cache(maxsize=2)
def _cached_model(name: str):
    from transformers import PretrainedConfig

    # Read config.json alone first, so that a Hub id of another kind of model fails before its weights download.
    path = resolve_model_path(None if name == DEFAULT_MODEL_NAME else name)  # a clear error if not bundled
    config, _ = PretrainedConfig.get_config_dict(path)
    if config.get("model_type") != "mirage":
        raise MirageError(f"{name!r} is not a MIRAGE model (model_type {config.get('model_type')!r})")
    return load_model(path)


def get_model(name: str | None):
    """(model, processor) for a model id, loaded once; a bad id raises `gr.Error` with one sentence."""
    name = (name or "").strip() or default_model()
    with _load_lock:  # two tabs asking for a new model at once load it once
        try:
            return _cached_model(name)
        except MirageError as error:
            text = str(error)
            raise fail(text[:1].upper() + text[1:] if name in text else f"Cannot load model {name!r}: {text}") from None
        except Exception as error:  # Hub errors, a malformed repo id, an incompatible config
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise fail(f"Cannot load model {name!r}: {message}") from None


# ---------------------------------------------------------------------------------------------------
# Images in and out
# ---------------------------------------------------------------------------------------------------


NOT_AN_IMAGE = "This file is not an image that can be read. Please upload a PNG, JPEG or WebP photo."


def too_large(width: int | None = None, height: int | None = None) -> gr.Error:
    size = f"{width}×{height} ({width * height / 1e6:.1f} MP)" if width and height else "too large"
    limit = f"{MAX_PIXELS / 1e6:.1f} MP"
    return fail(f"This photo is {size}; this demo takes up to {limit}. Please downscale it, or run `mirage restore` locally.")


def read_photo(path: str | None) -> Image.Image:
    """An uploaded file as an upright RGB image; unreadable or too large files raise `gr.Error`."""
    if not path:
        raise fail("Upload or paste a photo first.")
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise too_large(width, height)
            upright = ImageOps.exif_transpose(image)  # also decodes the pixels
            if upright.mode in ("RGBA", "LA", "PA") or (upright.mode == "P" and "transparency" in upright.info):
                background = Image.new("RGB", upright.size, (255, 255, 255))
                background.paste(upright.convert("RGBA"), mask=upright.convert("RGBA").getchannel("A"))
                return background
            return upright.convert("RGB")
    except Image.DecompressionBombError:
        raise too_large() from None
    except UnidentifiedImageError:
        raise fail(NOT_AN_IMAGE) from None
    except (OSError, SyntaxError, ValueError) as error:  # truncated or corrupt data
        raise fail(f"This image could not be decoded ({error}). Please try another file.") from None


def photo_input(**kwargs) -> gr.Image:
    """A `gr.Image` (file path out) whose upload check fails with a readable message instead of PIL's exception.

    Its `preprocess` is wrapped on the instance: subclassing a Gradio component would make Gradio write a .pyi
    stub next to this module at import."""
    component = gr.Image(type="filepath", image_mode=None, sources=["upload", "clipboard"], **kwargs)
    preprocess = component.preprocess

    def checked_preprocess(payload):
        try:
            return preprocess(payload)
        except gr.Error:
            raise
        except Image.DecompressionBombError:
            raise too_large() from None
        except Exception:
            raise fail(NOT_AN_IMAGE) from None

    component.preprocess = checked_preprocess
    return component


def fit_within(image: Image.Image, max_side: int) -> Image.Image:
    if max(image.size) <= max_side:
        return image
    scaled = image.copy()
    scaled.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return scaled


def save_png(image: Image.Image, stem: str) -> str:
    """Write a PNG under a fresh folder of `DOWNLOAD_DIR` (Gradio copies it into its cache) and return its path.

    Folders older than an hour are removed on the way, so a long-running Space does not fill its disk."""
    import shutil

    DOWNLOAD_DIR.mkdir(parents=True, exist_ok=True)
    for old in DOWNLOAD_DIR.iterdir():
        with contextlib.suppress(FileNotFoundError):  # another request may be cleaning up too
            if time.time() - old.stat().st_mtime > 3600:
                shutil.rmtree(old, ignore_errors=True)
    path = Path(tempfile.mkdtemp(dir=DOWNLOAD_DIR)) / f"{stem}.png"
    image.save(path, format="PNG")
    return str(path)


def restore_photo_image(image: Image.Image, model_name: str | None, progress=None) -> tuple[Image.Image, int]:
    """Restore one RGB photo; returns the restored photo and the number of tiles used (1 = whole image)."""
    model, processor = get_model(model_name)
    pixel_values = processor(image, return_tensors="pt").pixel_values
    tile_size = TILE_SIZE if max(image.size) > TILE_THRESHOLD else None
    tiles = [1]

    def report(done: int, total: int) -> None:
        tiles[0] = total
        if progress is not None:
            progress((done, total), desc="Restoring", unit="tiles" if total > 1 else "steps")

    with torch.inference_mode():
        restored = restore(model, pixel_values, tile_size=tile_size, tile_overlap=TILE_OVERLAP, progress=report)
    return processor.post_process(restored, output_type="pil")[0], tiles[0]


def user_errors(function):
    """Turn any unexpected exception into one `gr.Error` sentence (logged in full on the server)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except gr.Error:
            raise
        except MirageError as error:
            raise fail(str(error)) from None
        except Exception as error:
            logger.exception("unexpected error in %s", function.__name__)
            raise fail(f"Something went wrong ({type(error).__name__}). Please try another photo.") from None

    return wrapper


# ---------------------------------------------------------------------------------------------------
# Event handlers
# ---------------------------------------------------------------------------------------------------


@user_errors
def restore_photo(path: str | None, model_name: str | None, progress=gr.Progress()):
    """Restore tab: returns ((before, after) for the slider, the full-size PNG path, a one-line summary)."""
    image = read_photo(path)
    progress(0, desc="Loading model")
    start = time.perf_counter()
    restored, tiles = restore_photo_image(image, model_name, progress)
    seconds = time.perf_counter() - start
    stem = Path(path).stem or "photo"
    download = save_png(restored, f"{stem}_restored")
    width, height = image.size
    summary = f"Restored {width}×{height} in {seconds:.1f} s" + (f" ({tiles} tiles)." if tiles > 1 else ".")
    if max(image.size) > PREVIEW_MAX_SIDE:
        summary += f" The comparison shows a {PREVIEW_MAX_SIDE}-pixel preview; the download is full size."
    preview = (fit_within(image, PREVIEW_MAX_SIDE), fit_within(restored, PREVIEW_MAX_SIDE))
    return preview, download, summary


def degrade_photo(
    clean: Image.Image, sigma: float, rain: float, haze: float, blur: int, lowlight: float, seed: int
) -> Image.Image:
    """Apply the chosen degradations in physical order: haze, rain, motion blur, low light, then sensor noise."""
    from . import degradations

    seeds = np.random.SeedSequence(int(seed)).spawn(5)
    degraded = clean
    if haze > 0:
        degraded = degradations.add_haze(degraded, beta=float(haze), seed=seeds[0])
    if rain > 0:
        degraded = degradations.add_rain(degraded, amount=float(rain), seed=seeds[1])
    if int(blur) > 1:
        degraded = degradations.add_motion_blur(degraded, kernel_size=int(blur) | 1, seed=seeds[2])
    if lowlight > 0:
        degraded = degradations.add_lowlight(degraded, strength=float(lowlight), seed=seeds[3])
    if sigma > 0:
        degraded = degradations.add_noise(degraded, sigma=float(sigma), seed=seeds[4])
    return degraded


def quality_table(clean: Image.Image, degraded: Image.Image, restored: Image.Image) -> str:
    """A Markdown table of PSNR (dB) / SSIM against the clean photo (paper protocol, RGB)."""
    from .metrics import psnr, ssim

    def as_tensor(image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]

    target = as_tensor(clean)
    rows = ["| vs. the clean photo | PSNR (dB) | SSIM |", "|---|---|---|"]
    for name, image in (("degraded", degraded), ("restored", restored)):
        prediction = as_tensor(image)
        value = psnr(prediction, target).item()
        psnr_text = "∞" if value == float("inf") else f"{value:.2f}"
        rows.append(f"| {name} | {psnr_text} | {ssim(prediction, target).item():.4f} |")
    return "\n".join(rows)


@user_errors
def try_it(path, sigma, rain, haze, blur, lowlight, seed, model_name, progress=gr.Progress()):
    """Try-it tab: returns (degraded, restored) for the slider and the PSNR/SSIM table."""
    clean = fit_within(read_photo(path), TRY_MAX_SIDE)
    if min(clean.size) < 7:
        raise fail("This photo is too small: PSNR/SSIM need at least 7×7 pixels.")
    progress(0, desc="Degrading")
    degraded = degrade_photo(clean, sigma, rain, haze, blur, lowlight, seed)
    restored, _ = restore_photo_image(degraded, model_name, progress)
    return (degraded, restored), quality_table(clean, degraded, restored)


# ---------------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------------

DESCRIPTION = """# MIRAGE image restoration
One model for noise, rain, haze, motion blur and low light
([paper](https://arxiv.org/abs/2505.18679), [code](https://github.com/Amazingren/MIRAGE)).
Photos with a side over {tile} pixels are restored in tiles; the limit is {limit:.1f} megapixels."""


def _example_files(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(str(path) for path in folder.iterdir() if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))


def build_demo(examples_dir: str | os.PathLike | None = None) -> gr.Blocks:
    """The Blocks app. `examples_dir`: a folder with `degraded/` photos for the Restore tab and `clean/` photos
    for the Try-it tab (either may be missing)."""
    retain_freed_memory()  # the CPU Space reuses its large feature maps instead of page-faulting them in again
    examples_dir = Path(examples_dir) if examples_dir is not None else None
    degraded_examples = _example_files(examples_dir / "degraded") if examples_dir else []
    clean_examples = _example_files(examples_dir / "clean") if examples_dir else []
    with gr.Blocks(title="MIRAGE image restoration", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(DESCRIPTION.format(tile=TILE_THRESHOLD, limit=MAX_PIXELS / 1e6))
        model_name = gr.Dropdown(
            choices=model_choices(), value=default_model(), allow_custom_value=True, elem_id="model",
            label="Model", info="a bundled model, a local model folder or a Hugging Face Hub id (loaded on first use)",
        )
        with gr.Tab("Restore", id="restore"):
            with gr.Row():
                with gr.Column():
                    photo = photo_input(label="Degraded photo", elem_id="restore-input")
                    restore_button = gr.Button("Restore", variant="primary", elem_id="restore-button")
                    if degraded_examples:
                        gr.Examples(degraded_examples, inputs=photo, label="Example photos")
                with gr.Column():
                    comparison = gr.ImageSlider(
                        type="pil", format="png", label="Before / after", interactive=False, elem_id="restore-slider",
                    )
                    summary = gr.Markdown(elem_id="restore-summary")
                    download = gr.File(label="Restored photo (PNG, full resolution)", elem_id="restore-download")
            restore_button.click(
                restore_photo, [photo, model_name], [comparison, download, summary], api_name="restore",
            )
        with gr.Tab("Try it", id="try"):
            with gr.Row():
                with gr.Column():
                    clean_photo = photo_input(label="Clean photo", elem_id="try-input")
                    if clean_examples:
                        gr.Examples(clean_examples, inputs=clean_photo, label="Example photos")
                    sigma = gr.Slider(0, 100, value=25, step=1, label="Noise σ (0-255 scale)")
                    rain = gr.Slider(0, 1, value=0, step=0.05, label="Rain amount")
                    haze = gr.Slider(0, 3, value=0, step=0.1, label="Haze density β")
                    blur = gr.Slider(1, 63, value=1, step=2, label="Motion blur kernel size (1 = none)")
                    lowlight = gr.Slider(0, 1, value=0, step=0.05, label="Low light strength")
                    seed = gr.Number(value=0, precision=0, label="Seed")
                    try_button = gr.Button("Degrade and restore", variant="primary", elem_id="try-button")
                with gr.Column():
                    try_comparison = gr.ImageSlider(
                        type="pil", format="png", label="Degraded / restored", interactive=False, elem_id="try-slider",
                    )
                    scores = gr.Markdown(elem_id="try-scores")
            try_button.click(
                try_it, [clean_photo, sigma, rain, haze, blur, lowlight, seed, model_name], [try_comparison, scores],
                api_name="try_it",
            )
    return demo


__all__ = ["build_demo", "default_model", "degrade_photo", "get_model", "read_photo", "restore_photo", "try_it"]
