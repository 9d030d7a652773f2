"""Running a model over a built test set and reporting the results in the paper's layout.

Each row is scored on its own (batch size 1, as the official test scripts): input and target are
centre-cropped to a multiple of 16 (not CDD-11 rows, per the official code), the model restores the input
(whole, or tiled with `tile_size`), and PSNR/SSIM of the clamped output are averaged per test set. A test
set is a (source, degradation) pair: "BSD68 σ25", "Rain100L", "SOTS", "GoPro", "LOL", "CDD-11 low_haze".
"""

from __future__ import annotations

import re

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from .data import CDD11_SOURCE, center_crop_multiple
from .metrics import MetricAccumulator, psnr, ssim

# The paper's tables: columns as (source, degradation), in the paper's order; the average is over columns.
PAPER_TABLES = {
    "3-degradation": [("BSD68", "noise_15"), ("BSD68", "noise_25"), ("BSD68", "noise_50"), ("Rain100L", "rain"), ("SOTS", "haze")],
    "5-degradation": [("SOTS", "haze"), ("Rain100L", "rain"), ("BSD68", "noise_25"), ("GoPro", "blur"), ("LOL", "low")],
}


def set_name(source: str, degradation: str) -> str:
    """Display name of a test set: "BSD68 σ25" for noise, "CDD-11 <kind>" for CDD-11, the degradation for
    synthesized rows (`mirage data synth`: "noise_25", "rain", ...), else the source."""
    if source.startswith("synthetic:"):
        return degradation
    if degradation.startswith("noise_"):
        return f"{source} σ{degradation.split('_', 1)[1]}"
    if source == CDD11_SOURCE:
        return f"{CDD11_SOURCE} {degradation}"
    return source


def _to_tensor(image) -> torch.Tensor:
    """PIL image -> float32 [1, 3, H, W] in [0, 1] (RGB conversion as the official test code)."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)[None]


def _datasets(data) -> Iterable[tuple[str, Any]]:
    """(split name, dataset) pairs of a `Dataset`, a `DatasetDict` / dict, or a list of datasets."""
    from datasets import Dataset

    if isinstance(data, Dataset):
        return [("data", data)]
    if isinstance(data, (list, tuple)):
        return [(f"data {index}", dataset) for index, dataset in enumerate(data)]
    return list(data.items())


def evaluate_model(
    model,
    data,
    protocol: str = "paper",
    tile_size: int | None = None,
    crop_border: int = 0,
    limit: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
    score_inputs: bool = False,
) -> dict[str, dict[str, float]]:
    """Score `model` on a `Dataset`, `DatasetDict` or list of datasets with the MIRAGE schema.

    Returns {set name: {"psnr", "ssim", "count"}} in the order sets are met; with `score_inputs`, also
    "input_psnr" / "input_ssim" of the degraded inputs (what restoration gains). `limit` caps the images per set.
    """
    from tqdm.auto import tqdm

    from .inference import restore

    device = torch.device(device) if device is not None else next(model.parameters()).device
    accumulator, input_accumulator = MetricAccumulator(), MetricAccumulator()
    seen: dict[str, int] = {}
    for split, dataset in _datasets(data):
        for row in tqdm(dataset, desc=f"evaluating {split}", disable=not progress, unit="image"):
            name = set_name(row["source"], row["degradation"])
            if limit is not None and seen.get(name, 0) >= limit:
                continue
            seen[name] = seen.get(name, 0) + 1
            degraded, clean = _to_tensor(row["input"]), _to_tensor(row["target"])
            if row["source"] != CDD11_SOURCE:
                degraded, clean = center_crop_multiple(degraded), center_crop_multiple(clean)
            restored = restore(model, degraded.to(device), tile_size=tile_size, tile_overlap=min(32, (tile_size or 0) // 4))
            clean = clean.to(restored.device)
            accumulator.update(
                name,
                psnr(restored, clean, protocol=protocol, crop_border=crop_border),
                ssim(restored, clean, protocol=protocol, crop_border=crop_border),
            )
            if score_inputs:
                degraded = degraded.to(restored.device)
                input_accumulator.update(
                    name,
                    psnr(degraded, clean, protocol=protocol, crop_border=crop_border),
                    ssim(degraded, clean, protocol=protocol, crop_border=crop_border),
                )
    results = accumulator.results()
    if score_inputs:
        for name, scores in input_accumulator.results().items():
            results[name].update(input_psnr=scores["psnr"], input_ssim=scores["ssim"])
    return results


def paper_tables(results: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
    """The paper's tables that `results` completes: {table: {"columns": {set: {psnr, ssim}}, "average": {psnr, ssim}}}.

    Tables: "3-degradation", "5-degradation" (only when every column is present), "CDD-11" (every CDD-11 set
    present) and "other" (any remaining set, no average).
    """
    tables: dict[str, dict[str, Any]] = {}
    used: set[str] = set()
    for table, columns in PAPER_TABLES.items():
        names = [set_name(source, degradation) for source, degradation in columns]
        if all(name in results for name in names):
            tables[table] = _table(results, names)
            used.update(names)
    cdd11 = [name for name in results if name.startswith(f"{CDD11_SOURCE} ")]
    if cdd11:
        tables["CDD-11"] = _table(results, cdd11)
        used.update(cdd11)
    others = [name for name in results if name not in used]
    if others:
        tables["other"] = {"columns": {name: _scores(results[name]) for name in others}}
    return tables


def _scores(result: dict[str, float]) -> dict[str, float]:
    return {"psnr": result["psnr"], "ssim": result["ssim"]}


def _table(results, names: list[str]) -> dict[str, Any]:
    columns = {name: _scores(results[name]) for name in names}
    average = {metric: sum(c[metric] for c in columns.values()) / len(columns) for metric in ("psnr", "ssim")}
    return {"columns": columns, "average": average}


def format_tables(tables: dict[str, dict[str, Any]]) -> str:
    """Plain-text tables: one block per table, a column per test set, `PSNR/SSIM` cells as in the paper."""
    blocks = []
    for table, content in tables.items():
        headers = list(content["columns"]) + (["Average"] if "average" in content else [])
        cells = [f"{c['psnr']:.2f}/{c['ssim']:.4f}" for c in content["columns"].values()]
        if "average" in content:
            cells.append(f"{content['average']['psnr']:.2f}/{content['average']['ssim']:.4f}")
        widths = [max(len(h), len(c)) for h, c in zip(headers, cells)]
        blocks.append(
            "\n".join(
                [
                    f"{table} (PSNR/SSIM)",
                    "  ".join(h.ljust(w) for h, w in zip(headers, widths)),
                    "  ".join(c.ljust(w) for c, w in zip(cells, widths)),
                ]
            )
        )
    return "\n\n".join(blocks)


def eval_results(results: dict[str, dict[str, float]], protocol: str = "paper", source: str | None = None) -> list:
    """`huggingface_hub.EvalResult`s (PSNR and SSIM per test set) for `ModelCardData(eval_results=...)`.

    The Hub groups model-index results by dataset type, so each set gets its own: its name as a slug
    ("BSD68 σ25" -> "bsd68-25")."""
    from huggingface_hub import EvalResult

    suffix = "" if protocol == "paper" else " (Y channel)"
    entries = []
    for name, scores in results.items():
        dataset_type = re.sub(r"[^0-9a-z]+", "-", name.lower()).strip("-") or "images"
        for metric, label in (("psnr", "PSNR"), ("ssim", "SSIM")):
            entries.append(
                EvalResult(
                    task_type="image-to-image",
                    task_name="Image Restoration",
                    dataset_type=dataset_type,
                    dataset_name=name,
                    metric_type=metric,
                    metric_name=label + suffix,
                    metric_value=round(float(scores[metric]), 4 if metric == "ssim" else 2),
                    source_name=source,
                )
            )
    return entries


def model_index_results(results: dict[str, dict[str, float]], protocol: str = "paper") -> list[dict[str, Any]]:
    """`model-index` result entries (one per test set) for a model card's metadata."""
    from huggingface_hub.repocard_data import eval_results_to_model_index

    if not results:
        return []
    return eval_results_to_model_index("mirage", eval_results(results, protocol))[0]["results"]


def evaluation_report(results: dict[str, dict[str, float]], protocol: str = "paper", model: str | None = None) -> dict[str, Any]:
    """Everything `mirage eval --json` writes: per-set results, the paper's tables and model-index entries."""
    return {
        "model": model,
        "protocol": protocol,
        "sets": results,
        "tables": paper_tables(results),
        "model_index": model_index_results(results, protocol),
    }
