"""The `mirage` command line: one sub-command per module in `mirage_hf.commands`.

Each command module exposes `register(subparsers)`, which adds its parser and sets `func` to a callable
taking the parsed arguments and returning an exit code. Command modules import only argparse at the top
level, so `mirage --help` stays fast; heavy imports happen inside the command.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import MirageError

# Sub-commands in the order `mirage --help` lists them.
COMMAND_MODULES = (
    "restore",
    "convert",
    "data",
    "eval",
    "export_onnx",
    "push",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mirage",
        description="MIRAGE all-in-one image restoration (noise, rain, haze, blur, low light).",
        epilog="`mirage COMMAND --help` documents each command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"mirage_hf.commands.{name}").register(subparsers)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mirage_hf")
    except PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    from transformers.utils import logging as transformers_logging

    from .allocator import retain_freed_memory

    retain_freed_memory()  # large feature maps are reused instead of page-faulted in again (see allocator.py)
    transformers_logging.disable_progress_bar()  # our commands show their own progress; no "Loading weights" bars
    try:
        return int(args.func(args) or 0)
    except MirageError as error:
        print(f"mirage {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"mirage {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
