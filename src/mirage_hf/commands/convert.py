"""`mirage convert`: official MIRAGE checkpoint -> `from_pretrained` folder."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert an official MIRAGE checkpoint into a from_pretrained folder",
        description="Convert an official MIRAGE checkpoint (Lightning .ckpt with weights under 'state_dict' and "
        "keys prefixed 'net.', or a bare state dict) into a folder that from_pretrained loads. The file is read "
        "with torch.load(weights_only=True); any missing, unexpected or mis-shaped key is listed and refused.",
    )
    parser.add_argument("checkpoint", help="official .ckpt / .pth file")
    parser.add_argument("output_dir", help="folder to write (must not exist or be empty)")
    parser.add_argument("--variant", choices=["tiny", "small"], default="tiny", help="architecture (default: tiny)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..convert import convert_checkpoint
    from ..errors import MirageError
    from ..image_processing_mirage import MirageImageProcessor
    from ..io_utils import atomic_dir

    output_dir = Path(args.output_dir)
    if output_dir.exists() and any(output_dir.iterdir()):
        raise MirageError(f"{output_dir} exists and is not empty; choose a new folder")
    model = convert_checkpoint(args.checkpoint, args.variant)
    with atomic_dir(output_dir) as tmp_dir:
        model.save_pretrained(tmp_dir)
        MirageImageProcessor().save_pretrained(tmp_dir)
    print(f"wrote MIRAGE-{args.variant} to {output_dir}")
    return 0
