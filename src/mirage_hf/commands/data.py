"""`mirage data`: benchmark folders -> Hugging Face datasets (`build`), clean photos -> paired data (`synth`)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="build MIRAGE datasets from benchmark folders or synthesize them from clean images",
        description="Turn benchmark folders or clean photos into datasets with one schema (input, target, task, "
        "degradation, source, id), saved for datasets.load_from_disk (Arrow) and as Parquet shards (parquet/).",
    )
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    build = actions.add_parser(
        "build",
        help="read a train / test / CDD-11 folder layout",
        description="Read a benchmark layout, check every file (any unpaired, missing or unreadable file is "
        "reported and nothing is written), and save the dataset. Layouts: train (Denoise/, Derain/{rainy,gt}, "
        "Dehaze/{synthetic,original}, Deblur/{blur,sharp}, Enhance/{low,gt}), test (denoise/<set>/, "
        "derain/Rain100L/{input,target}, dehaze/{input,target}, deblur/gopro/..., enhance/lol/...), cdd11 "
        "({train,test}/<kind>/ with clean images in clear/).",
    )
    build.add_argument("kind", choices=["train", "test", "cdd11"], help="which layout ROOT has")
    build.add_argument("root", help="the layout's root folder")
    _add_output_arguments(build)
    build.add_argument("--seed", type=int, default=0, help="noise seed of the denoising test rows (default: 0)")
    build.add_argument(
        "--lists", metavar="DIR", help="official data_dir/ holding noisy/denoise.txt, rainy/rainTrain.txt, hazy/hazy_outside.txt"
    )
    build.set_defaults(func=run_build)

    synth = actions.add_parser(
        "synth",
        help="degrade clean images into a paired dataset",
        description="Synthesize degraded inputs (noise, rain, haze, blur, low light and their compositions) "
        "from a folder or dataset of clean images, seeded and reproducible (mirage_hf.degradations).",
    )
    synth.add_argument("source", help="folder of clean images, or a dataset id / path for datasets.load_dataset")
    _add_output_arguments(synth)
    synth.add_argument("--kinds", nargs="+", metavar="KIND", help="degradation kinds (default: the module's default set)")
    synth.add_argument("--seed", type=int, default=0, help="synthesis seed (default: 0)")
    synth.add_argument("--variants", type=int, default=1, help="degraded versions per image and kind (default: 1)")
    synth.add_argument("--max-size", type=int, help="resize clean images so their long side is at most this")
    synth.set_defaults(func=run_synth)


def _add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (must not exist or be empty)")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="also push the dataset to this Hub dataset repo")
    parser.add_argument("--private", action="store_true", help="make the pushed repo private")


def _check_out(out: str) -> None:
    from pathlib import Path

    from ..errors import MirageError

    path = Path(out)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise MirageError(f"{path} already exists and is not empty; choose another --out")


def _save_and_report(dataset_dict, args: argparse.Namespace) -> None:
    from ..data import count_rows, save_dataset_dict
    from ..errors import MirageError

    save_dataset_dict(dataset_dict, args.out)
    for split, counts in count_rows(dataset_dict).items():
        listed = ", ".join(f"{task} {n}" for task, n in sorted(counts.items()))
        print(f"{split}: {sum(counts.values())} rows ({listed})")
    print(f"wrote {args.out} (datasets.load_from_disk; Parquet shards in {args.out}/parquet)")
    if args.push_to_hub:
        try:
            dataset_dict.push_to_hub(args.push_to_hub, private=args.private)
        except Exception as error:  # network, auth and repo errors from huggingface_hub
            first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise MirageError(f"push to {args.push_to_hub} failed: {first_line}") from None
        print(f"pushed to https://huggingface.co/datasets/{args.push_to_hub}")


def run_build(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from ..data import build_dataset_dict

    _check_out(args.out)
    Path(args.out).absolute().parent.mkdir(parents=True, exist_ok=True)
    # The generator cache lives next to the output and goes away once the dataset is saved.
    with tempfile.TemporaryDirectory(prefix=".mirage-build-", dir=Path(args.out).absolute().parent) as cache_dir:
        dataset_dict = build_dataset_dict(args.kind, args.root, seed=args.seed, list_dir=args.lists, progress=True, cache_dir=cache_dir)
        _save_and_report(dataset_dict, args)
    return 0


def run_synth(args: argparse.Namespace) -> int:
    from ..errors import MirageError

    _check_out(args.out)
    try:
        from ..degradations import synthesize_dataset
    except ImportError as error:
        raise MirageError(f"degradation synthesis is unavailable: {error}") from None
    from datasets import DatasetDict

    dataset = synthesize_dataset(args.source, kinds=args.kinds, seed=args.seed, num_variants=args.variants, max_size=args.max_size)
    _save_and_report(DatasetDict({"train": dataset}), args)
    return 0
