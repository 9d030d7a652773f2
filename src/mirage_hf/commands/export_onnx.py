"""`mirage export-onnx MODEL OUT.onnx`: write the inference graph as ONNX with dynamic height and width."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export-onnx",
        help="export a model to ONNX (dynamic height and width)",
        description="Export a MIRAGE model (bundled name, folder or Hub id) to ONNX: input `pixel_values` "
        "[1, 3, H, W] in [0, 1], output `reconstruction` of the same size (unclamped); H and W are dynamic.",
    )
    parser.add_argument("model", help="bundled model name, model folder or Hub id")
    parser.add_argument("output", help="the .onnx file to write (written atomically)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset version (default 18)")
    parser.add_argument(
        "--check", action="store_true", help="run the file with onnxruntime on two random sizes and compare to PyTorch"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import MirageError

    output = Path(args.output)
    if output.suffix.lower() != ".onnx":
        raise MirageError(f"{output}: the output file must end in .onnx")
    if output.is_dir():
        raise MirageError(f"{output} is a folder")
    try:
        import onnxscript  # noqa: F401  (the dynamo ONNX exporter needs it)
    except ImportError:
        raise MirageError("ONNX export needs the onnx extra: pip install 'mirage_hf[onnx]'") from None

    from ..export import check_onnx, export_onnx
    from ..inference import load_model

    model, _ = load_model(args.model)
    export_onnx(model, output, opset=args.opset)
    print(f"wrote {output}")
    if args.check:
        difference = check_onnx(model, output)
        print(f"onnxruntime matches PyTorch (max abs difference {difference:.1e})")
    return 0
