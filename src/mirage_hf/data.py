"""Benchmarks as Hugging Face datasets: one schema for every task, the folder layouts of the all-in-one
literature (PromptIR / AdaIR / MIRAGE), reproducible noisy test rows, paired training transforms and the
per-task training mix of the official recipe.

Every row has `input` and `target` images, a `task` class, a `degradation` string (`noise_25`, `rain`,
`haze`, `blur`, `low`, `low_haze_rain`, ...), the benchmark `source` and the file stem `id`.

Denoising rows:
- Test sets store the noisy input: uint8 clean + N(0, σ²) noise, clipped to [0, 255], cast to uint8 by
  truncation (the official recipe), for σ ∈ {15, 25, 50}. The noise of each image comes from its own
  generator, `numpy.random.default_rng([seed, σ, crc32(source/file name)])`, so it depends only on the
  seed, σ and the file name, never on folder listing order or on the other files. The noise covers the
  whole image; evaluation then centre-crops both images (the official script crops first, then adds
  noise: the same distribution, another realisation).
- Training sets store the clean image as both `input` and `target` with degradation `noise`;
  `training_mixture` turns them into `noise_15/25/50` rows and `PairedTrainTransform` adds the noise on the
  fly to the augmented clean patch, as the official training code does (any `noise`/`noise_<σ>` row is
  re-noised from its target, synthesized ones included).

`mirage data build` writes `save_to_disk` Arrow shards (`datasets.load_from_disk`) and the same rows as
Parquet shards under `parquet/<split>/` (streaming); `load_built_dataset` reads either.
"""

from __future__ import annotations

import io
import os
import random
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .errors import MirageError

TASK_NAMES = ["denoise", "derain", "dehaze", "deblur", "lowlight", "composite"]
NOISE_SIGMAS = (15, 25, 50)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
CDD11_KINDS = (
    "low", "haze", "rain", "snow", "low_haze", "low_rain", "low_snow", "haze_rain", "haze_snow",
    "low_haze_rain", "low_haze_snow",
)  # fmt: skip
CDD11_SOURCE = "CDD-11"
# Repeats per epoch in the official training mix (denoise: 3 copies of each clean image for each σ).
TRAINING_REPEATS = {"denoise": 3, "derain": 120, "dehaze": 1, "deblur": 5, "lowlight": 20, "composite": 1}
# Test folders under `denoise/` and their benchmark names.
DENOISE_TEST_SETS = {"bsd68": "BSD68", "cbsd68": "CBSD68", "urban100": "Urban100", "kodak24": "Kodak24"}


def mirage_features():
    """The `datasets.Features` shared by every MIRAGE dataset (built, synthesized or pushed)."""
    from datasets import ClassLabel, Features, Value
    from datasets import Image as ImageFeature

    return Features(
        {
            "input": ImageFeature(),
            "target": ImageFeature(),
            "task": ClassLabel(names=TASK_NAMES),
            "degradation": Value("string"),
            "source": Value("string"),
            "id": Value("string"),
        }
    )


def __getattr__(name: str):
    # `MIRAGE_FEATURES` is built on first use so that importing this module does not import `datasets`.
    if name == "MIRAGE_FEATURES":
        return mirage_features()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----------------------------------------------------------------------------------------------------------
# Layout readers: folders -> lists of pairs, with every problem collected (nothing is dropped silently).
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairSpec:
    """One row to build: where its images come from and its labels. `input_path` None = noisy from target."""

    input_path: Path | None
    target_path: Path
    task: str
    degradation: str
    source: str
    id: str
    split: str


class LayoutProblems:
    """Collects unpaired, missing and unreadable files; `raise_if_any` reports them all in one error."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, message: str) -> None:
        self.messages.append(message)

    def raise_if_any(self) -> None:
        if self.messages:
            listed = "; ".join(self.messages)
            raise MirageError(f"{len(self.messages)} problem(s) in the dataset layout: {listed}")


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _non_image_files(folder: Path, allowed: Sequence[str] = ()) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() not in IMAGE_EXTENSIONS and p.name not in allowed and not p.name.startswith(".")
    )


def _read_list(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _listed_files(list_path: Path, folder: Path, problems: LayoutProblems) -> list[Path]:
    """The files a list names (paths relative to `folder`); each one missing is reported."""
    files = []
    for entry in _read_list(list_path):
        path = folder / entry
        if path.is_file():
            files.append(path)
        else:
            problems.add(f"{entry} is listed in {list_path} but missing from {folder}")
    return files


def _find_list(root: Path, task_folder: str, list_name: str, list_dir: Path | None, list_subdir: str) -> Path | None:
    """The optional official list file: `<list_dir>/<subdir>/<name>` (the official data_dir) or `<task>/<name>`."""
    candidates = [root / task_folder / list_name]
    if list_dir is not None:
        candidates.insert(0, list_dir / list_subdir / list_name)
        candidates.insert(1, list_dir / list_name)
    return next((path for path in candidates if path.is_file()), None)


def _same_name_pairs(
    input_dir: Path, target_dir: Path, problems: LayoutProblems, **labels: str
) -> list[PairSpec]:
    """Pairs of identically named files in two folders; files on one side only are reported."""
    for folder in (input_dir, target_dir):
        if not folder.is_dir():
            problems.add(f"missing folder {folder}")
            return []
    inputs = {p.name: p for p in _image_files(input_dir)}
    targets = {p.name: p for p in _image_files(target_dir)}
    for name in sorted(inputs.keys() - targets.keys()):
        problems.add(f"unpaired input {inputs[name]} (no {target_dir / name})")
    for name in sorted(targets.keys() - inputs.keys()):
        problems.add(f"unpaired target {targets[name]} (no {input_dir / name})")
    for folder in (input_dir, target_dir):
        for path in _non_image_files(folder):
            problems.add(f"not an image file: {path}")
    return [
        PairSpec(inputs[name], targets[name], id=Path(name).stem, **labels)
        for name in sorted(inputs.keys() & targets.keys())
    ]


def _mapped_pairs(
    inputs: Iterable[Path], target_for: Callable[[Path], Path], problems: LayoutProblems, **labels: str
) -> tuple[list[PairSpec], set[str]]:
    """Pairs where the target name is a function of the input name; missing and unused targets are reported."""
    pairs, used = [], set()
    for input_path in inputs:
        target_path = target_for(input_path)
        if not target_path.is_file():
            problems.add(f"unpaired input {input_path} (no {target_path})")
            continue
        used.add(target_path.name)
        pairs.append(PairSpec(input_path, target_path, id=input_path.stem, **labels))
    return pairs, used


def read_train_layout(root: str | os.PathLike, list_dir: str | os.PathLike | None = None) -> tuple[list[PairSpec], LayoutProblems]:
    """The training layout: `Denoise/`, `Derain/{rainy,gt}`, `Dehaze/{synthetic,original}`, `Deblur/{blur,sharp}`,
    `Enhance/{low,gt}` (each optional, at least one present). Official list files (`denoise.txt`,
    `rainTrain.txt`, `hazy_outside.txt`) are used when found in the task folder or in `list_dir` (the
    official `data_dir/` with `noisy/`, `rainy/`, `hazy/`); listed files that are missing are reported."""
    root = Path(root)
    list_dir = Path(list_dir) if list_dir is not None else None
    problems, pairs = LayoutProblems(), []
    split = "train"

    denoise_dir = root / "Denoise"
    if denoise_dir.is_dir():
        files = _image_files(denoise_dir)
        list_path = _find_list(root, "Denoise", "denoise.txt", list_dir, "noisy")
        if list_path is not None:
            listed = _read_list(list_path)
            present = {p.name: p for p in files}
            for name in listed:
                if name not in present:
                    problems.add(f"{name} is listed in {list_path} but missing from {denoise_dir}")
            files = [present[name] for name in sorted(set(listed)) if name in present]
        for path in _non_image_files(denoise_dir, allowed=("denoise.txt",)):
            problems.add(f"not an image file: {path}")
        pairs += [PairSpec(None, p, "denoise", "noise", "WED+BSD400", p.stem, split) for p in files]

    derain_dir = root / "Derain"
    if derain_dir.is_dir():
        rainy_dir, gt_dir = derain_dir / "rainy", derain_dir / "gt"
        list_path = _find_list(root, "Derain", "rainTrain.txt", list_dir, "rainy")
        if list_path is not None:
            inputs = _listed_files(list_path, derain_dir, problems)
        elif rainy_dir.is_dir():
            inputs = _image_files(rainy_dir)
        else:
            problems.add(f"missing folder {rainy_dir}")
            inputs = []

        def rain_target(path: Path) -> Path:  # rain-N.png -> gt/norain-N.png
            return gt_dir / ("norain-" + path.name.split("rain-")[-1])

        found, used = _mapped_pairs(inputs, rain_target, problems, task="derain", degradation="rain", source="Rain100L", split=split)
        pairs += found
        if list_path is None and gt_dir.is_dir():
            for path in _image_files(gt_dir):
                if path.name not in used:
                    problems.add(f"unpaired target {path} (no rainy image maps to it)")

    dehaze_dir = root / "Dehaze"
    if dehaze_dir.is_dir():
        original_dir = dehaze_dir / "original"
        list_path = _find_list(root, "Dehaze", "hazy_outside.txt", list_dir, "hazy")
        if list_path is not None:
            inputs = _listed_files(list_path, dehaze_dir, problems)
        else:
            synthetic_dir = dehaze_dir / "synthetic"
            if not synthetic_dir.is_dir():
                problems.add(f"missing folder {synthetic_dir}")
                inputs = []
            else:
                inputs = [p for part in sorted(synthetic_dir.iterdir()) if part.is_dir() for p in _image_files(part)]

        def haze_target(path: Path) -> Path:  # synthetic/partK/ID_A_B.jpg -> original/ID.jpg
            return original_dir / (path.name.split("_")[0] + path.suffix)

        found, _ = _mapped_pairs(inputs, haze_target, problems, task="dehaze", degradation="haze", source="RESIDE-OTS", split=split)
        pairs += found  # a clean image serves many hazy ones; unused clean images are not errors

    if (root / "Deblur").is_dir():
        pairs += _same_name_pairs(root / "Deblur" / "blur", root / "Deblur" / "sharp", problems, task="deblur", degradation="blur", source="GoPro", split=split)
    if (root / "Enhance").is_dir():
        pairs += _same_name_pairs(root / "Enhance" / "low", root / "Enhance" / "gt", problems, task="lowlight", degradation="low", source="LOL", split=split)

    if not pairs and not problems.messages:
        problems.add(f"{root} has none of Denoise/, Derain/, Dehaze/, Deblur/, Enhance/")
    return pairs, problems


def _split_name(source: str) -> str:
    return re.sub(r"[^0-9a-zA-Z_]+", "_", source).strip("_").lower()


def read_test_layout(root: str | os.PathLike, sigmas: Sequence[int] = NOISE_SIGMAS) -> tuple[list[PairSpec], LayoutProblems]:
    """The test layout: `denoise/<set>/` (clean), `derain/<set>/{input,target}` (target `no` + the input name's
    part before the first `_`), `dehaze/{input,target}` (SOTS: target `ID.png` for `ID_*.png`),
    `deblur/gopro/{input,target}`, `enhance/lol/{input,target}` (same names). One split per benchmark."""
    root = Path(root)
    problems, pairs = LayoutProblems(), []

    denoise_dir = root / "denoise"
    if denoise_dir.is_dir():
        for set_dir in sorted(p for p in denoise_dir.iterdir() if p.is_dir()):
            source = DENOISE_TEST_SETS.get(set_dir.name.lower(), set_dir.name)
            for path in _non_image_files(set_dir):
                problems.add(f"not an image file: {path}")
            for sigma in sigmas:
                pairs += [PairSpec(None, p, "denoise", f"noise_{sigma}", source, p.stem, _split_name(source)) for p in _image_files(set_dir)]

    derain_dir = root / "derain"
    if derain_dir.is_dir():
        for set_dir in sorted(p for p in derain_dir.iterdir() if p.is_dir()):
            input_dir, target_dir = set_dir / "input", set_dir / "target"
            if not input_dir.is_dir() or not target_dir.is_dir():
                problems.add(f"{set_dir} needs input/ and target/ folders")
                continue

            def rain_target(path: Path, target_dir=target_dir) -> Path:  # official: "no" + name.split("_")[0]
                return target_dir / ("no" + path.name.split("_")[0])

            found, used = _mapped_pairs(_image_files(input_dir), rain_target, problems, task="derain", degradation="rain", source=set_dir.name, split=_split_name(set_dir.name))
            pairs += found
            for path in _image_files(target_dir):
                if path.name not in used:
                    problems.add(f"unpaired target {path} (no rainy image maps to it)")

    dehaze_dir = root / "dehaze"
    if dehaze_dir.is_dir():
        input_dir, target_dir = dehaze_dir / "input", dehaze_dir / "target"
        if not input_dir.is_dir() or not target_dir.is_dir():
            problems.add(f"{dehaze_dir} needs input/ and target/ folders")
        else:

            def haze_target(path: Path) -> Path:  # official: name.split("_")[0] + ".png"
                return target_dir / (path.name.split("_")[0] + ".png")

            found, _ = _mapped_pairs(_image_files(input_dir), haze_target, problems, task="dehaze", degradation="haze", source="SOTS", split="sots")
            pairs += found

    for folder, name, task, degradation, source in (
        ("deblur", "gopro", "deblur", "blur", "GoPro"),
        ("enhance", "lol", "lowlight", "low", "LOL"),
    ):
        set_dir = root / folder / name
        if set_dir.is_dir():
            pairs += _same_name_pairs(set_dir / "input", set_dir / "target", problems, task=task, degradation=degradation, source=source, split=_split_name(source))
        elif (root / folder).is_dir():
            problems.add(f"missing folder {set_dir}")

    if not pairs and not problems.messages:
        problems.add(f"{root} has none of denoise/, derain/, dehaze/, deblur/, enhance/")
    return pairs, problems


def read_cdd11_layout(root: str | os.PathLike) -> tuple[list[PairSpec], LayoutProblems]:
    """CDD-11: `{train,test}/<kind>/` degraded images with the clean image of the same name in `clear/`
    (a clean image no degraded image uses is reported). Every row has task `composite` and the folder name as its degradation; one split per present split."""
    root = Path(root)
    problems, pairs = LayoutProblems(), []
    splits = [s for s in ("train", "test") if (root / s).is_dir()]
    if not splits:
        problems.add(f"{root} has neither train/ nor test/")
    for split in splits:
        clear_dir = root / split / "clear"
        if not clear_dir.is_dir():
            problems.add(f"missing folder {clear_dir}")
            continue
        clear = {p.name for p in _image_files(clear_dir)}
        for path in _non_image_files(clear_dir):
            problems.add(f"not an image file: {path}")
        kind_dirs = sorted(p for p in (root / split).iterdir() if p.is_dir() and p.name != "clear")
        for kind_dir in kind_dirs:
            if kind_dir.name not in CDD11_KINDS:
                problems.add(f"unknown CDD-11 folder {kind_dir} (expected one of {', '.join(CDD11_KINDS)})")
                continue
            for path in _non_image_files(kind_dir):
                problems.add(f"not an image file: {path}")
            for path in _image_files(kind_dir):
                if path.name not in clear:
                    problems.add(f"unpaired input {path} (no {clear_dir / path.name})")
                    continue
                pairs.append(PairSpec(path, clear_dir / path.name, "composite", kind_dir.name, CDD11_SOURCE, path.stem, split))
        used = {pair.target_path.name for pair in pairs if pair.split == split}
        for name in sorted(clear - used):
            problems.add(f"unpaired clean image {clear_dir / name} (no degraded image of that name)")
    return pairs, problems


LAYOUT_READERS = {"train": read_train_layout, "test": read_test_layout, "cdd11": read_cdd11_layout}


# ----------------------------------------------------------------------------------------------------------
# Rows: reading bytes, synthesizing noisy inputs, building and saving the DatasetDict.
# ----------------------------------------------------------------------------------------------------------


def noise_rng(seed: int, sigma: int, source: str, name: str) -> np.random.Generator:
    """The generator for one noisy test image: depends on the seed, σ and `source/name` only."""
    return np.random.default_rng([seed, sigma, zlib.crc32(f"{source}/{name}".encode())])


def add_gaussian_noise(clean: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """uint8 [H, W, C] clean -> uint8 noisy: clean + N(0, σ²), clipped to [0, 255], truncated to uint8 (official)."""
    noise = rng.standard_normal(clean.shape)
    return np.clip(clean.astype(np.float64) + noise * sigma, 0, 255).astype(np.uint8)


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """uint8 [H, W, 3] RGB array of an image file (decoded completely, so truncated files fail here)."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _stored_bytes(path: Path) -> bytes:
    """The file's own bytes (no re-encoding), except BMP, stored as lossless PNG to halve the size."""
    if path.suffix.lower() == ".bmp":
        return _png_bytes(load_rgb(path))
    return path.read_bytes()


def check_pairs(pairs: Sequence[PairSpec], problems: LayoutProblems, progress: bool = False) -> None:
    """Decode every image once; unreadable files and input/target size mismatches go to `problems`."""
    from tqdm.auto import tqdm

    sizes: dict[Path, tuple[int, int] | None] = {}

    def size_of(path: Path) -> tuple[int, int] | None:
        if path not in sizes:
            try:
                sizes[path] = load_rgb(path).shape[:2]
            except Exception as error:  # PIL raises many types for bad files
                sizes[path] = None
                problems.add(f"unreadable image {path} ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'corrupt'})")
        return sizes[path]

    for pair in tqdm(pairs, desc="checking images", disable=not progress, unit="pair"):
        target_size = size_of(pair.target_path)
        if pair.input_path is None:
            continue
        input_size = size_of(pair.input_path)
        if input_size is not None and target_size is not None and input_size != target_size:
            problems.add(f"size mismatch: {pair.input_path} is {input_size[1]}x{input_size[0]} but {pair.target_path} is {target_size[1]}x{target_size[0]}")


def _rows(pairs: Sequence[PairSpec], seed: int) -> Iterator[dict]:
    for pair in pairs:
        target = {"bytes": _stored_bytes(pair.target_path), "path": pair.target_path.name}
        if pair.input_path is not None:
            input_image = {"bytes": _stored_bytes(pair.input_path), "path": pair.input_path.name}
        elif pair.degradation.startswith("noise_"):
            sigma = int(pair.degradation.split("_")[1])
            noisy = add_gaussian_noise(load_rgb(pair.target_path), sigma, noise_rng(seed, sigma, pair.source, pair.target_path.name))
            input_image = {"bytes": _png_bytes(noisy), "path": f"{pair.id}_noise_{sigma}.png"}
        else:  # clean training row: the noise is added on the fly by PairedTrainTransform
            input_image = target
        yield {"input": input_image, "target": target, "task": pair.task, "degradation": pair.degradation, "source": pair.source, "id": pair.id}


def build_dataset_dict(
    kind: str,
    root: str | os.PathLike,
    seed: int = 0,
    list_dir: str | os.PathLike | None = None,
    progress: bool = False,
    cache_dir: str | os.PathLike | None = None,
):
    """Read a layout (`train`, `test` or `cdd11`), check every file, and return a `datasets.DatasetDict`.

    Raises `MirageError` listing every unpaired, missing, unreadable or mismatched file. `seed` fixes the
    noise of denoising test rows (see the module docstring); it is recorded in each split's description.
    """
    from datasets import Dataset, DatasetDict, DatasetInfo

    if kind not in LAYOUT_READERS:
        raise MirageError(f"unknown layout {kind!r}: choose one of {', '.join(LAYOUT_READERS)}")
    root = Path(root)
    if not root.is_dir():
        raise MirageError(f"{root} is not a folder")
    pairs, problems = read_train_layout(root, list_dir) if kind == "train" else LAYOUT_READERS[kind](root)
    check_pairs(pairs, problems, progress=progress)
    problems.raise_if_any()

    splits: dict[str, list[PairSpec]] = {}
    for pair in pairs:
        splits.setdefault(pair.split, []).append(pair)
    dataset_dict = DatasetDict()
    for split, split_pairs in splits.items():
        info = DatasetInfo(description=f"MIRAGE {kind} layout, split {split}, noise seed {seed}")
        dataset_dict[split] = Dataset.from_generator(
            _rows,
            features=mirage_features(),
            gen_kwargs={"pairs": split_pairs, "seed": seed},
            cache_dir=str(cache_dir) if cache_dir is not None else None,
            fingerprint=_fingerprint(split_pairs, seed),
            info=info,
        )
    return dataset_dict


def _fingerprint(pairs: Sequence[PairSpec], seed: int) -> str:
    """Cache key of a split: the rows' labels and every file's path, size and modification time, and the seed."""
    import hashlib

    digest = hashlib.sha256(f"mirage-build-v1 {seed}".encode())
    for pair in pairs:
        for path in (pair.input_path, pair.target_path):
            stat = path.stat() if path is not None else None
            digest.update(repr((str(path), stat and (stat.st_size, stat.st_mtime_ns))).encode())
        digest.update(repr((pair.task, pair.degradation, pair.source, pair.id)).encode())
    return digest.hexdigest()[:32]


def count_rows(dataset_dict) -> dict[str, Counter]:
    """Rows per task for each split: {split: Counter({task: n})}."""
    counts = {}
    for split, dataset in dataset_dict.items():
        names = dataset.features["task"].names
        counts[split] = Counter(names[i] for i in dataset["task"])
    return counts


def save_dataset_dict(dataset_dict, out_dir: str | os.PathLike, max_shard_size: str = "500MB") -> Path:
    """Write `out_dir` atomically: `save_to_disk` Arrow shards (for `datasets.load_from_disk`) and Parquet shards
    under `out_dir/parquet/<split>/` (for `load_dataset("parquet", ..., streaming=True)` and the Hub).

    Refuses to write into an existing non-empty folder.
    """
    from .io_utils import atomic_dir

    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise MirageError(f"{out_dir} already exists and is not empty; choose another --out")
    with atomic_dir(out_dir) as tmp_dir:
        dataset_dict.save_to_disk(str(tmp_dir), max_shard_size=max_shard_size)
        for split, dataset in dataset_dict.items():
            num_shards = max(1, min(dataset.num_rows, -(-dataset.data.nbytes // _parse_size(max_shard_size))))
            split_dir = tmp_dir / "parquet" / split
            split_dir.mkdir(parents=True)
            for index in range(num_shards):
                shard = dataset.shard(num_shards, index, contiguous=True)
                shard.to_parquet(str(split_dir / f"{split}-{index:05d}-of-{num_shards:05d}.parquet"))
    return out_dir


def _parse_size(size: str) -> int:
    from datasets.utils.py_utils import convert_file_size_to_int

    return convert_file_size_to_int(size)


def parquet_data_files(out_dir: str | os.PathLike) -> dict[str, list[str]]:
    """{split: [parquet shard paths]} of a folder written by `save_dataset_dict`."""
    parquet_dir = Path(out_dir) / "parquet"
    return {p.name: sorted(str(f) for f in p.glob("*.parquet")) for p in sorted(parquet_dir.iterdir()) if p.is_dir()}


def load_built_dataset(path: str | os.PathLike, streaming: bool = False, split: str | None = None):
    """Load a dataset written by `mirage data build` (a folder) or pushed to the Hub (a repo id).

    `streaming=True` gives an `IterableDatasetDict` (or `IterableDataset` with `split`) read lazily from the
    Parquet shards; otherwise the memory-mapped Arrow copy is loaded with `datasets.load_from_disk`.
    """
    import datasets

    local = Path(path)
    if local.is_dir():
        if streaming:
            loaded = datasets.load_dataset("parquet", data_files=parquet_data_files(local), streaming=True, features=mirage_features())
        else:
            try:
                loaded = datasets.load_from_disk(str(local))
            except FileNotFoundError as error:
                raise MirageError(f"{local} is not a dataset written by `mirage data build` ({error})") from None
    elif local.exists() or str(path).startswith((".", "/")):
        raise MirageError(f"{path} is not a dataset folder")
    else:
        try:
            loaded = datasets.load_dataset(str(path), streaming=streaming)
        except Exception as error:  # offline, unknown repo, no access: one line for the user
            first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise MirageError(f"cannot load dataset {path!r}: {first_line}") from None
    if split is not None:
        if split not in loaded:
            raise MirageError(f"{path} has no split {split!r} (it has {', '.join(loaded)})")
        return loaded[split]
    return loaded


# ----------------------------------------------------------------------------------------------------------
# Crops and paired training transforms.
# ----------------------------------------------------------------------------------------------------------


def center_crop_multiple(image: np.ndarray | torch.Tensor, base: int = 16):
    """Centre-crop to height and width multiples of `base` (the official `crop_img`: the odd pixel goes to the end).

    numpy arrays are [H, W, C]; tensors are [..., H, W].
    """
    if isinstance(image, torch.Tensor):
        height, width = image.shape[-2:]
    else:
        height, width = image.shape[:2]
    crop_h, crop_w = height % base, width % base
    top, left = crop_h // 2, crop_w // 2
    if isinstance(image, torch.Tensor):
        return image[..., top : height - crop_h + top, left : width - crop_w + left]
    return image[top : height - crop_h + top, left : width - crop_w + left]


def dihedral(image: np.ndarray, mode: int) -> np.ndarray:
    """One of the 8 dihedral transforms of an [H, W, C] array, numbered as the official `data_augmentation`:
    mode = 2·(number of 90° counter-clockwise rotations) + (1 if flipped up-down afterwards); 0 is the identity."""
    if not 0 <= mode <= 7:
        raise ValueError(f"dihedral mode must be in 0..7, got {mode}")
    rotations, flip = {0: (0, 0), 1: (0, 1), 2: (1, 0), 3: (1, 1), 4: (2, 0), 5: (2, 1), 6: (3, 0), 7: (3, 1)}[mode]
    out = np.rot90(image, k=rotations)
    return np.ascontiguousarray(np.flipud(out) if flip else out)


class PairedTrainTransform:
    """Training transform for `Dataset.with_transform` / `set_transform` (batches) or `IterableDataset.map`
    (single rows): crop both images to a multiple of 16, take the same random `patch_size` crop of input and
    target, apply the same one-of-7 non-identity dihedral transform, then for `noise_<σ>` rows (σ drawn from
    {15, 25, 50} for plain `noise` rows) replace the input by the noisy augmented clean patch.

    Returns `pixel_values` and `labels` (float [3, P, P] in [0, 1]) and `task`. Images smaller than
    `patch_size` raise `MirageError`, or are reflect-padded with `pad_small=True`. Each process (DataLoader
    worker) gets its own generator: seeded from (`seed`, worker id) when `seed` is given.
    """

    def __init__(self, patch_size: int = 128, seed: int | None = None, pad_small: bool = False):
        self.patch_size = patch_size
        self.seed = seed
        self.pad_small = pad_small
        self._rng: random.Random | None = None
        self._np_rng: np.random.Generator | None = None
        self._pid: int | None = None

    def _generators(self) -> tuple[random.Random, np.random.Generator]:
        if self._pid != os.getpid():  # first call in this process: a fresh, per-worker stream
            worker = torch.utils.data.get_worker_info()
            worker_id = worker.id if worker is not None else 0
            entropy = [self.seed, worker_id] if self.seed is not None else None
            sequence = np.random.SeedSequence(entropy)
            self._np_rng = np.random.default_rng(sequence)
            self._rng = random.Random(int(sequence.generate_state(1)[0]))
            self._pid = os.getpid()
        return self._rng, self._np_rng

    def _fit(self, image: np.ndarray, row_id: str) -> np.ndarray:
        height, width = image.shape[:2]
        if height >= self.patch_size and width >= self.patch_size:
            return image
        if not self.pad_small:
            raise MirageError(
                f"image {row_id!r} is {width}x{height} after the multiple-of-16 crop, smaller than the "
                f"{self.patch_size} patch (use a smaller patch size or pad_small=True)"
            )
        pad_h, pad_w = max(0, self.patch_size - height), max(0, self.patch_size - width)
        return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect" if min(height, width) > 1 else "edge")

    def transform_pair(self, input_image, target_image, degradation: str, row_id: str = "") -> tuple[torch.Tensor, torch.Tensor]:
        """One pair of PIL images (or uint8 arrays) -> (input, target) float tensors [3, P, P]."""
        rng, np_rng = self._generators()
        target = self._fit(center_crop_multiple(np.asarray(_as_rgb(target_image))), row_id)
        noise = degradation == "noise" or degradation.startswith("noise_")
        source = target if noise else self._fit(center_crop_multiple(np.asarray(_as_rgb(input_image))), row_id)
        if source.shape != target.shape:
            raise MirageError(f"input and target of {row_id!r} differ in size: {source.shape} vs {target.shape}")
        height, width = target.shape[:2]
        top = rng.randint(0, height - self.patch_size)
        left = rng.randint(0, width - self.patch_size)
        window = (slice(top, top + self.patch_size), slice(left, left + self.patch_size))
        mode = rng.randint(1, 7)
        target_patch = dihedral(target[window], mode)
        if noise:
            sigma = int(degradation.split("_")[1]) if "_" in degradation else rng.choice(NOISE_SIGMAS)
            input_patch = add_gaussian_noise(target_patch, sigma, np_rng)
        else:
            input_patch = dihedral(source[window], mode)
        return _to_tensor(input_patch), _to_tensor(target_patch)

    def __call__(self, examples: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(examples["target"], list):  # a single row (streaming map)
            inputs, labels = self.transform_pair(examples["input"], examples["target"], examples["degradation"], examples.get("id", ""))
            return {"pixel_values": inputs, "labels": labels, "task": examples["task"]}
        pairs = [
            self.transform_pair(i, t, d, r)
            for i, t, d, r in zip(examples["input"], examples["target"], examples["degradation"], examples.get("id", [""] * len(examples["target"])))
        ]
        return {
            "pixel_values": [p[0] for p in pairs],
            "labels": [p[1] for p in pairs],
            "task": list(examples["task"]),
        }


def _as_rgb(image) -> Image.Image | np.ndarray:
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    return image


def _to_tensor(array: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, 3] -> float32 [3, H, W] in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).float().div_(255.0)


# ----------------------------------------------------------------------------------------------------------
# The per-task training mix.
# ----------------------------------------------------------------------------------------------------------


def training_mixture(dataset, repeats: dict[str, int] | None = None, sigmas: Sequence[int] = NOISE_SIGMAS, seed: int = 0):
    """One epoch of the official mix, as a shuffled `datasets.Dataset` (no image is copied: only an index map).

    Each row of task t appears `repeats[t]` times (default `TRAINING_REPEATS`: denoise 3, derain 120, dehaze 1,
    deblur 5, lowlight 20, composite 1); denoising rows appear that many times for each σ in `sigmas`, with
    degradation `noise_<σ>`. Accepts a `Dataset` or a `DatasetDict` (its `train` split).
    """
    from datasets import DatasetDict, concatenate_datasets

    if isinstance(dataset, DatasetDict):
        if "train" not in dataset:
            raise MirageError(f"no train split to mix (splits: {', '.join(dataset)})")
        dataset = dataset["train"]
    repeats = {**TRAINING_REPEATS, **(repeats or {})}
    task_names = dataset.features["task"].names
    tasks = np.asarray(dataset["task"])
    parts = []
    for task_index, task in enumerate(task_names):
        rows = np.flatnonzero(tasks == task_index)
        if len(rows) == 0 or repeats.get(task, 0) == 0:
            continue
        if task == "denoise":
            for sigma in sigmas:
                degradations = [f"noise_{sigma}" if t == task_index else d for t, d in zip(tasks, dataset["degradation"])]
                relabelled = dataset.remove_columns("degradation").add_column("degradation", degradations)
                parts.append(relabelled.select(np.tile(rows, repeats[task])))
        else:
            parts.append(dataset.select(np.tile(rows, repeats[task])))
    if not parts:
        raise MirageError("nothing to mix: the dataset has no rows of the requested tasks")
    columns = list(dataset.column_names)
    return concatenate_datasets([part.select_columns(columns) for part in parts]).shuffle(seed=seed)


def streaming_mixture_probabilities(counts: dict[str, int], repeats: dict[str, int] | None = None, sigmas: Sequence[int] = NOISE_SIGMAS) -> dict[str, float]:
    """Per-task sampling probabilities for `datasets.interleave_datasets` that reproduce the official mix:
    proportional to rows × repeats (× number of σ for denoising). `counts` maps task -> number of rows."""
    repeats = {**TRAINING_REPEATS, **(repeats or {})}
    weights = {t: n * repeats.get(t, 0) * (len(sigmas) if t == "denoise" else 1) for t, n in counts.items() if n}
    total = sum(weights.values())
    if total == 0:
        raise MirageError("nothing to mix: every task has zero rows or zero repeats")
    return {t: w / total for t, w in weights.items() if w}
