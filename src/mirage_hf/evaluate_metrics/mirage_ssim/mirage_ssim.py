"""SSIM for image restoration under the MIRAGE paper's protocol (or the Y-channel one), per image then averaged."""

import evaluate

from mirage_hf.evaluate_metrics import kwargs_description, mean_over_images, metric_info
from mirage_hf.metrics import ssim

_DESCRIPTION = """
Structural similarity (SSIM) between restored images and their references, computed per image and averaged.
protocol="paper" (default): RGB clamped to [0, 1], exactly as skimage.metrics.structural_similarity(
data_range=1, channel_axis=...) (7x7 uniform window, sample covariance, per channel). protocol="y":
ITU-R BT.601 Y channel on the 0-255 scale with `crop_border` pixels removed on each side and an 11x11
Gaussian window (sigma 1.5), as BasicSR calculate_ssim(test_y_channel=True).
Built on mirage_hf.metrics.ssim (torch).
"""
_KWARGS_DESCRIPTION = kwargs_description("ssim", "")


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MirageSSIM(evaluate.Metric):
    def _info(self):
        return metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION)

    def _compute(self, predictions, references, protocol="paper", crop_border=0):
        return mean_over_images("ssim", ssim, predictions, references, protocol, crop_border)
