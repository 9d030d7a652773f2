"""SSIM for image restoration under the MIRAGE paper's protocol (or the Y-channel one), per image then averaged."""

import datasets
import evaluate
import torch

from mirage_hf.metrics import PROTOCOLS, ssim

_DESCRIPTION = """
Structural similarity (SSIM) between restored images and their references, computed per image and averaged.
protocol="paper" (default): RGB clamped to [0, 1], exactly as skimage.metrics.structural_similarity(
data_range=1, channel_axis=...) (7x7 uniform window, sample covariance, per channel). protocol="y":
ITU-R BT.601 Y channel on the 0-255 scale with `crop_border` pixels removed on each side and an 11x11
Gaussian window (sigma 1.5), as BasicSR calculate_ssim(test_y_channel=True).
Built on mirage_hf.metrics.ssim (torch).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: restored images, each [3, H, W] (channels first) float in [0, 1] (lists, numpy or torch).
    references: reference images, same shapes as the predictions.
    protocol: "paper" or "y".
    crop_border: pixels removed on each side for protocol "y" (default 0).
Returns:
    ssim: mean SSIM over the images; ssim_per_image: the per-image values.
Example:
    >>> metric = evaluate.load(mirage_hf.metrics.evaluate_module_path("ssim"))
    >>> metric.compute(predictions=[restored], references=[clean])["ssim"]
"""

_CITATION = """
@inproceedings{mirage2026,
  title = {MIRAGE: all-in-one image restoration},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year = {2026},
  note = {arXiv:2505.18679}
}
"""

_IMAGE = datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Value("float32"))))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MirageSSIM(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": _IMAGE, "references": _IMAGE}),
        )

    def _compute(self, predictions, references, protocol="paper", crop_border=0):
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        values = [
            float(ssim(torch.as_tensor(p, dtype=torch.float32), torch.as_tensor(r, dtype=torch.float32), protocol, crop_border)[0])
            for p, r in zip(predictions, references)
        ]
        return {"ssim": sum(values) / len(values), "ssim_per_image": values}
