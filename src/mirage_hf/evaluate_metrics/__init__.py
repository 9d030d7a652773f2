"""What the `evaluate` modules mirage_psnr and mirage_ssim share: their inputs, citation and per-image averaging.

Only those modules import this (it imports `evaluate` and `datasets`, which the core package never does).
"""

from __future__ import annotations

from collections.abc import Callable

import datasets
import evaluate
import torch

from ..metrics import PROTOCOLS

CITATION = """
@inproceedings{mirage2026,
  title = {MIRAGE: Efficient Degradation-agnostic Image Restoration via Channel-Wise Functional Decomposition
           and Manifold Regularization},
  author = {Ren, Bin and others},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year = {2026},
  note = {arXiv:2505.18679}
}
"""

# One image: [3, H, W] (channels first) floats.
IMAGE_FEATURE = datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Value("float32"))))


def kwargs_description(name: str, unit: str) -> str:
    return f"""
Args:
    predictions: restored images, each [3, H, W] (channels first) float in [0, 1] (lists, numpy or torch).
    references: reference images, same shapes as the predictions.
    protocol: "paper" or "y".
    crop_border: pixels removed on each side for protocol "y" (default 0).
Returns:
    {name}: mean {name.upper()}{unit} over the images; {name}_per_image: the per-image values.
Example:
    >>> metric = evaluate.load(mirage_hf.metrics.evaluate_module_path("{name}"))
    >>> metric.compute(predictions=[restored], references=[clean])["{name}"]
"""


def metric_info(description: str, inputs_description: str) -> evaluate.MetricInfo:
    return evaluate.MetricInfo(
        description=description,
        citation=CITATION,
        inputs_description=inputs_description,
        features=datasets.Features({"predictions": IMAGE_FEATURE, "references": IMAGE_FEATURE}),
    )


def mean_over_images(name: str, metric: Callable, predictions, references, protocol: str, crop_border: int) -> dict:
    """`{name: mean, name_per_image: [...]}` of `metric(prediction, reference, protocol, crop_border)` per image."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    values = [
        float(metric(torch.as_tensor(p, dtype=torch.float32), torch.as_tensor(r, dtype=torch.float32), protocol, crop_border)[0])
        for p, r in zip(predictions, references)
    ]
    return {name: sum(values) / len(values), f"{name}_per_image": values}
