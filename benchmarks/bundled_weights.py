"""The bundled default weights (`mirage-default`): their training data and their held-out numbers.

The training data are the real photographs that ship inside scikit-image (`skimage.data`, no download),
degraded with `mirage_hf.degradations`. Three photos (`HELD_OUT_PHOTOS`) never enter training; the
numbers in the model card are PSNR/SSIM (the paper's protocol, `mirage_hf.metrics`) on them, per
degradation, for the restored image and for the degraded input.

    # 1. build the dataset (train: 16 photos x 5 degradations x 6 variants; validation: the held-out photos)
    python benchmarks/bundled_weights.py build-data /tmp/mirage-skimage
    # 2. train (see training/recipes/default_cpu.yaml for the exact command)
    # 3. reproduce the held-out numbers of a model (default: the bundled weights)
    python benchmarks/bundled_weights.py evaluate --data /tmp/mirage-skimage [--model PATH] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
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


def held_out_set_name(row: dict) -> str:
    """The name the held-out numbers are reported under: the degradation (noise with its σ)."""
    return row["degradation"]


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
    import torch

    from mirage_hf.data import center_crop_multiple, load_built_dataset
    from mirage_hf.inference import load_model, restore
    from mirage_hf.metrics import MetricAccumulator, psnr, ssim

    model, _ = load_model(model_path)
    restored_scores, input_scores = MetricAccumulator(), MetricAccumulator()
    for row in load_built_dataset(data_dir, split="validation"):
        degraded, clean = (
            center_crop_multiple(torch.from_numpy(np.asarray(row[key].convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)[None])
            for key in ("input", "target")
        )
        name = held_out_set_name(row)
        restored = restore(model, degraded)
        restored_scores.update(name, psnr(restored, clean), ssim(restored, clean))
        input_scores.update(name, psnr(degraded, clean), ssim(degraded, clean))
    inputs = input_scores.results()
    return {
        name: {**scores, "input_psnr": inputs[name]["psnr"], "input_ssim": inputs[name]["ssim"]}
        for name, scores in restored_scores.results().items()
    }


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
    scores = commands.add_parser("evaluate", help="PSNR/SSIM per degradation on the held-out photos")
    scores.add_argument("--data", required=True, help="the folder written by build-data")
    scores.add_argument("--model", default=None, help="model folder or name (default: the bundled weights)")
    scores.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    if args.command == "build-data":
        print(build_data(args.out_dir, seed=args.seed, num_variants=args.num_variants))
        return 0
    results = evaluate(args.model, args.data)
    print(format_results(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
