"""PSNR for image restoration under the MIRAGE paper's protocol (or the Y-channel one), per image then averaged."""

import evaluate

from mirage_hf.evaluate_metrics import kwargs_description, mean_over_images, metric_info
from mirage_hf.metrics import psnr

_DESCRIPTION = """
Peak signal-to-noise ratio between restored images and their references, computed per image and averaged.
protocol="paper" (default): RGB clamped to [0, 1], data range 1, exactly as
skimage.metrics.peak_signal_noise_ratio(data_range=1). protocol="y": ITU-R BT.601 Y channel on the 0-255
scale with `crop_border` pixels removed on each side, as BasicSR calculate_psnr(test_y_channel=True).
Built on mirage_hf.metrics.psnr (torch).
"""
_KWARGS_DESCRIPTION = kwargs_description("psnr", " in dB")


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MiragePSNR(evaluate.Metric):
    def _info(self):
        return metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION)

    def _compute(self, predictions, references, protocol="paper", crop_border=0):
        return mean_over_images("psnr", psnr, predictions, references, protocol, crop_border)
