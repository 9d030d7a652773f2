"""`mirage restore`: restore image files or folders with a MIRAGE model."""

from __future__ import annotations

import argparse

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
AUTO_TILE_PIXELS = 4_000_000  # images above this many pixels are tiled unless --tile is given
AUTO_TILE_SIZE = 512


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "restore",
        help="restore images (noise, rain, haze, blur, low light)",
        description="Restore image files and folders. Outputs keep each file's name, relative folder and format; "
        "inputs are never overwritten, outputs are written atomically, and existing outputs are skipped unless "
        "--overwrite is given. Each unreadable file gets one error line; the exit code is 1 if any file failed.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders (searched recursively)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder")
    parser.add_argument(
        "--model", default=None, metavar="PATH_OR_HUB_ID",
        help="bundled model name, local folder or Hub id (default: the bundled default weights)",
    )
    parser.add_argument(
        "--tile", type=int, default=None, metavar="N",
        help=f"restore in N×N tiles (default: whole image up to {AUTO_TILE_PIXELS // 1_000_000} MP, "
        f"{AUTO_TILE_SIZE}×{AUTO_TILE_SIZE} tiles above)",
    )
    parser.add_argument("--tile-overlap", type=int, default=32, metavar="N", help="tile overlap in pixels (default: 32)")
    parser.add_argument("--tile-batch-size", type=int, default=4, metavar="N", help="tiles per forward pass (default: 4)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default: auto)")
    parser.add_argument(
        "--precision", choices=["fp32", "bf16"], default="fp32",
        help="fp32, or bf16 autocast: on a GPU 1.4-1.9x faster at 1024x1024 (not at 512x512), at about half the memory, "
        "within about 0.5%% of fp32; slow on most CPUs (default: fp32)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--dry-run", action="store_true", help="list what would be written and load no model")
    parser.set_defaults(func=run)


def collect_jobs(inputs: list[str], output_dir):
    """(source, destination) pairs: files keep their name, folders keep their relative layout.

    Returns (jobs, errors) where errors are one-line messages for inputs that cannot be used."""
    from pathlib import Path

    jobs, errors = [], []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                errors.append(f"{path}: no images found ({', '.join(IMAGE_SUFFIXES)})")
            jobs.extend((file, output_dir / file.relative_to(path)) for file in files)
        elif path.is_file():
            jobs.append((path, output_dir / path.name))
        else:
            errors.append(f"{path}: no such file or folder")
    return jobs, errors


def restore_file(source, destination, model, processor, args, autocast_dtype=None) -> None:
    """Read, restore and atomically write one image; raises ValueError/OSError with a readable message."""
    import torch
    from PIL import Image, ImageOps, UnidentifiedImageError

    from ..inference import restore
    from ..io_utils import atomic_path

    try:
        with Image.open(source) as image:
            image_format = image.format
            upright = ImageOps.exif_transpose(image)  # also loads the pixels
    except UnidentifiedImageError:
        raise ValueError("not a readable image") from None
    except (OSError, SyntaxError) as error:  # truncated or corrupt data
        raise ValueError(f"cannot decode image ({error})") from None
    alpha = upright.getchannel("A") if upright.mode in ("RGBA", "LA") else None
    pixel_values = processor(upright, return_tensors="pt")["pixel_values"]
    height, width = pixel_values.shape[-2:]
    tile = args.tile
    if tile is None and height * width > AUTO_TILE_PIXELS:
        tile = AUTO_TILE_SIZE
    with torch.inference_mode():
        restored = restore(model, pixel_values, tile_size=tile, tile_overlap=args.tile_overlap,
                           tile_batch_size=args.tile_batch_size, autocast_dtype=autocast_dtype)
    output = processor.post_process(restored, output_type="pil")[0]
    save_format = image_format or Image.registered_extensions().get(destination.suffix.lower(), "PNG")
    save_options = {}
    if save_format == "JPEG":
        save_options = {"quality": 95, "subsampling": 0}
    if alpha is not None and save_format in ("PNG", "WEBP", "TIFF"):
        output.putalpha(alpha)
    with atomic_path(destination) as tmp_path:
        output.save(tmp_path, format=save_format, **save_options)


def precision_dtype(precision: str, device):
    """`torch.bfloat16` for `--precision bf16` (None for fp32); MirageError where the device cannot run it.
    (fp16 is not offered: it was never measured on this model.)"""
    import torch

    from ..errors import MirageError

    if precision == "fp32":
        return None
    if not torch.amp.is_autocast_available(device.type):
        raise MirageError(f"--precision {precision} is not available on {device.type} (no autocast there); use fp32")
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise MirageError(f"--precision bf16 is not supported by this GPU ({torch.cuda.get_device_name(device)}); use fp32")
    return torch.bfloat16


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from tqdm.auto import tqdm

    from ..errors import MirageError

    output_dir = Path(args.output)
    if output_dir.exists() and not output_dir.is_dir():
        raise MirageError(f"{output_dir} exists and is not a folder")
    if args.tile is not None and args.tile <= args.tile_overlap:
        raise MirageError(f"--tile ({args.tile}) must be larger than --tile-overlap ({args.tile_overlap})")
    jobs, errors = collect_jobs(args.inputs, output_dir)
    for message in errors:
        print(f"mirage restore: error: {message}", file=sys.stderr)

    input_paths = {source.resolve() for source, _ in jobs}
    todo, skipped, failed = [], 0, len(errors)
    for source, destination in jobs:
        if destination.resolve() in input_paths:
            print(f"mirage restore: error: {source}: output {destination} would overwrite an input; choose another -o",
                  file=sys.stderr)
            failed += 1
        elif destination.exists() and not args.overwrite:
            skipped += 1
        else:
            todo.append((source, destination))

    if args.dry_run:
        for source, destination in todo:
            print(f"{source} -> {destination}")
        print(f"dry run: {len(todo)} to restore, {skipped} skipped (output exists), {failed} failed")
        return 1 if failed else 0

    done = 0
    if todo:
        from ..inference import load_model, resolve_device

        device = resolve_device(args.device)
        autocast_dtype = precision_dtype(args.precision, device)
        model, processor = load_model(args.model, device=device)
        for source, destination in tqdm(todo, desc="restoring", unit="image", disable=None):
            try:
                restore_file(source, destination, model, processor, args, autocast_dtype)
                done += 1
            except (ValueError, OSError, RuntimeError, MemoryError) as error:  # one line per bad file, then go on
                message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                tqdm.write(f"mirage restore: error: {source}: {message}", file=sys.stderr)
                failed += 1
    print(f"{done} restored, {failed} failed, {skipped} skipped (output exists) -> {output_dir}")
    return 1 if failed else 0
