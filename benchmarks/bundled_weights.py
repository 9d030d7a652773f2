"""The bundled default weights (`mirage-default`): their training data and their held-out numbers.

The training data are the real photographs that ship inside scikit-image (`skimage.data`, no download),
degraded with `mirage_hf.degradations`. Three photos (`HELD_OUT_PHOTOS`) never enter training; the
numbers in the model card are PSNR/SSIM (the paper's protocol, `mirage_hf.metrics`) on them, per
degradation, for the restored image and for the degraded input.

    # 1. build the dataset (train: 16 photos x 5 degradations x 6 variants; validation: the held-out photos)
    python benchmarks/bundled_weights.py build-data /tmp/mirage-skimage
    # 2. train (see training/recipes/default_cpu.yaml for the exact command)
    # 3. copy the trained EMA weights into the package with their model card (held-out numbers measured here)
    python benchmarks/bundled_weights.py package runs/mirage-default --data /tmp/mirage-skimage --notes "..."
    # 4. reproduce the held-out numbers of a model (default: the bundled weights)
    python benchmarks/bundled_weights.py evaluate --data /tmp/mirage-skimage [--model PATH] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

# Real photographs from `skimage.data` (grey ones are used as RGB). `cat` is the same photo as `chelsea`
# and `stereo_motorcycle` is a stereo pair, so only one view of it is used.
TRAIN_PHOTOS = (
    "astronaut", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "moon", "coins",
    "grass", "gravel", "brick", "clock", "page", "text", "cell", "microaneurysms",
)  # fmt: skip
HELD_OUT_PHOTOS = ("coffee", "camera", "stereo_motorcycle")
TRAIN_KINDS = ("noise", "rain", "haze", "blur", "lowlight")
HELD_OUT_KINDS = ("noise_15", "noise_25", "noise_50", "rain", "haze", "blur", "lowlight")
TRAIN_MAX_SIZE = 512  # long side of the training photos (bicubic), so that the degradations are fast
HELD_OUT_MAX_SIZE = 256  # long side of the held-out photos (validation during training stays quick)
BUNDLED_DIR = Path(__file__).resolve().parents[1] / "src" / "mirage_hf" / "weights" / "mirage-default"
COMMAND = """python benchmarks/bundled_weights.py build-data /tmp/mirage-skimage
OMP_NUM_THREADS=1 accelerate launch --cpu --num_processes 1 training/train.py \\
    --recipe training/recipes/default_cpu.yaml --dataset /tmp/mirage-skimage --output_dir runs/mirage-default
python benchmarks/bundled_weights.py package runs/mirage-default --data /tmp/mirage-skimage --notes "..."
python benchmarks/bundled_weights.py evaluate --data /tmp/mirage-skimage   # the numbers below"""


def skimage_photo(name: str) -> np.ndarray:
    """A `skimage.data` photo as uint8 [H, W, 3] (grey ones are repeated over three channels)."""
    import skimage.data

    image = getattr(skimage.data, name)()
    if isinstance(image, tuple):  # stereo_motorcycle: (left, right, disparity)
        image = image[0]
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8)


def build_data(out_dir: str, seed: int = 0, num_variants: int = 6) -> Path:
    """Write the train / validation `DatasetDict` of the bundled weights to `out_dir` (`save_dataset_dict` layout)."""
    from datasets import DatasetDict
    from PIL import Image

    from mirage_hf.data import save_dataset_dict
    from mirage_hf.degradations import synthesize_dataset

    with tempfile.TemporaryDirectory() as tmp:
        splits = {}
        for split, photos, kinds, variants, max_size in (
            ("train", TRAIN_PHOTOS, TRAIN_KINDS, num_variants, TRAIN_MAX_SIZE),
            ("validation", HELD_OUT_PHOTOS, HELD_OUT_KINDS, 1, HELD_OUT_MAX_SIZE),
        ):
            folder = Path(tmp) / split
            folder.mkdir()
            for name in photos:
                Image.fromarray(skimage_photo(name)).save(folder / f"{name}.png")
            splits[split] = synthesize_dataset(
                folder, kinds=kinds, seed=seed, num_variants=variants, max_size=max_size,
                source_name=f"synthetic:skimage-{split}", cache_dir=str(Path(tmp) / "cache"),
            )
        return save_dataset_dict(DatasetDict(splits), out_dir)


def evaluate(model_path: str | None, data_dir: str) -> dict[str, dict[str, float]]:
    """Per degradation: {"psnr", "ssim", "input_psnr", "input_ssim", "count"} on the held-out photos."""
    from mirage_hf.data import load_built_dataset
    from mirage_hf.evaluation import evaluate_model
    from mirage_hf.inference import load_model

    model, _ = load_model(model_path)
    return evaluate_model(model, load_built_dataset(data_dir, split="validation"), score_inputs=True)


def package(run_dir: str, data_dir: str, notes: str, out_dir: Path = BUNDLED_DIR) -> Path:
    """Copy `run_dir/model` (EMA weights, config, processor) to `out_dir` with a model card whose numbers are
    measured here on the held-out photos."""
    import yaml

    from mirage_hf.inference import load_model
    from mirage_hf.io_utils import atomic_dir
    from mirage_hf.training_utils import render_model_card

    model_dir = Path(run_dir) / "model"
    recipe = yaml.safe_load((model_dir / "recipe.yaml").read_text())
    results = evaluate(str(model_dir), data_dir)
    model, _ = load_model(str(model_dir))
    config, size = model.config, sum(p.numel() for p in model.parameters())
    card = render_model_card(
        model_name="mirage-default",
        model_id="mirage-default",
        results=results,
        recipe=recipe,
        command=COMMAND,
        data_description=recipe["data_description"],
        model_description=(
            "The default weights bundled with `mirage_hf` (`mirage restore photo.jpg` with no `--model`, "
            "`mirage_hf.inference.load_model()`): a reduced-width MIRAGE trained on a CPU, meant as a working "
            "default and a demonstration of the training pipeline, not as a reproduction of the paper. "
            f"{size / 1e6:.2f} M parameters (MIRAGE-Tiny: 6.2 M): embed_dim {config.embed_dim}, depths {config.depths}, "
            f"heads {config.num_heads}, {config.num_refinement_blocks} refinement block. It removes Gaussian noise, "
            "rain streaks, haze, camera-shake blur and low light of the kinds `mirage_hf.degradations` synthesises; "
            "expect modest gains on real photos. For paper-quality results use converted official checkpoints "
            "(`mirage convert`) or train a Tiny / Small recipe on the benchmark data."
        ),
        training_description=notes,
    )
    shutil.rmtree(out_dir, ignore_errors=True)
    with atomic_dir(out_dir) as tmp:
        for name in ("config.json", "model.safetensors", "preprocessor_config.json"):
            shutil.copy2(model_dir / name, tmp / name)
        card.save(tmp / "README.md")
        for path in (tmp, *tmp.iterdir()):  # package data must be readable by everyone
            path.chmod(0o755 if path.is_dir() else 0o644)
    return out_dir


def format_results(results: dict[str, dict[str, float]]) -> str:
    lines = ["| degradation | degraded input PSNR / SSIM | restored PSNR / SSIM |", "|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['input_psnr']:.2f} / {r['input_ssim']:.4f} | {r['psnr']:.2f} / {r['ssim']:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build-data", help="write the skimage train / held-out dataset")
    build.add_argument("out_dir")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--num_variants", type=int, default=6)
    pack = commands.add_parser("package", help="copy a trained run's model into the package with its model card")
    pack.add_argument("run_dir", help="the --output_dir of the training run")
    pack.add_argument("--data", required=True, help="the folder written by build-data")
    pack.add_argument("--notes", required=True, help="hardware and wall time, for the model card")
    scores = commands.add_parser("evaluate", help="PSNR/SSIM per degradation on the held-out photos")
    scores.add_argument("--data", required=True, help="the folder written by build-data")
    scores.add_argument("--model", default=None, help="model folder or name (default: the bundled weights)")
    scores.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    if args.command == "build-data":
        print(build_data(args.out_dir, seed=args.seed, num_variants=args.num_variants))
        return 0
    if args.command == "package":
        print(package(args.run_dir, args.data, args.notes))
        return 0
    results = evaluate(args.model, args.data)
    print(format_results(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
