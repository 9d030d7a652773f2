"""`mirage eval`: score a model on a built test set with the paper's protocol (or the Y-channel one)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a model on a test set built with `mirage data build`",
        description="Run a model over every image of a built test set and print PSNR/SSIM per test set in the "
        "paper's layout (3-degradation, 5-degradation, CDD-11). Protocol 'paper': RGB, data range 1, skimage "
        "SSIM, multiple-of-16 centre crop (not for CDD-11). Protocol 'y': BT.601 Y channel, Gaussian SSIM "
        "(BasicSR).",
    )
    parser.add_argument("--model", help="bundled model name, model folder or Hub id (default: the bundled default)")
    parser.add_argument("--data", required=True, help="folder written by `mirage data build`, or a Hub dataset id")
    parser.add_argument("--split", nargs="+", metavar="SPLIT", help="only these splits (default: all)")
    parser.add_argument("--protocol", choices=["paper", "y"], default="paper", help="metric convention (default: paper)")
    parser.add_argument("--crop-border", type=int, default=0, help="pixels removed on each side for --protocol y (default: 0)")
    parser.add_argument("--tile", type=int, metavar="N", help="restore in N x N tiles (bounded memory; the paper uses whole images)")
    parser.add_argument("--limit", type=int, metavar="N", help="at most N images per test set (a quick check)")
    parser.add_argument("--device", help="torch device (default: cuda, else mps, else cpu)")
    parser.add_argument("--json", metavar="PATH", help="also write the results, tables and model-index entries as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from ..data import load_built_dataset
    from ..errors import MirageError
    from ..evaluation import evaluate_model, evaluation_report, format_tables
    from ..inference import load_model, resolve_device
    from ..io_utils import atomic_path

    if args.tile is not None and args.tile < 16:
        raise MirageError(f"--tile must be at least 16, got {args.tile}")
    if args.limit is not None and args.limit < 1:
        raise MirageError(f"--limit must be at least 1, got {args.limit}")
    if args.crop_border < 0:
        raise MirageError(f"--crop-border must be >= 0, got {args.crop_border}")
    data = load_built_dataset(args.data)
    if args.split:
        missing = [s for s in args.split if s not in data]
        if missing:
            raise MirageError(f"{args.data} has no split {', '.join(missing)} (it has {', '.join(data)})")
        data = {s: data[s] for s in args.split}
    model, _ = load_model(args.model, device=resolve_device(args.device))
    try:
        results = evaluate_model(model, data, protocol=args.protocol, tile_size=args.tile, crop_border=args.crop_border, limit=args.limit, progress=True)
    except ValueError as error:  # e.g. an image smaller than the SSIM window
        raise MirageError(str(error)) from None
    report = evaluation_report(results, protocol=args.protocol, model=args.model)
    print(format_tables(report["tables"]))
    if args.json:
        with atomic_path(args.json) as tmp_path:
            tmp_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.json}")
    return 0
