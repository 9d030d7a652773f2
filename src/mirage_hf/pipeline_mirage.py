"""The `"image-restoration"` pipeline task: image in, restored PIL image of the same size out."""

from __future__ import annotations

from transformers import Pipeline
from transformers.image_utils import load_image

from .inference import restore


class ImageRestorationPipeline(Pipeline):
    """
    Restore images with a MIRAGE model:

    ```python
    >>> import mirage_hf  # registers the task
    >>> from transformers import pipeline
    >>> restorer = pipeline("image-restoration", model="path/to/model")
    >>> restored = restorer("noisy.png")  # PIL image, same size as the input
    >>> restored = restorer(photo, tile_size=512, tile_overlap=32)  # large photos in bounded memory
    ```
    """

    _load_processor = False
    _load_image_processor = True
    _load_feature_extractor = False
    _load_tokenizer = False

    def _sanitize_parameters(self, tile_size=None, tile_overlap=None, tile_batch_size=None, timeout=None, **kwargs):
        preprocess_params = {} if timeout is None else {"timeout": timeout}
        forward_params = {}
        if tile_size is not None:
            forward_params["tile_size"] = tile_size
        if tile_overlap is not None:
            forward_params["tile_overlap"] = tile_overlap
        if tile_batch_size is not None:
            forward_params["tile_batch_size"] = tile_batch_size
        return preprocess_params, forward_params, {}

    def preprocess(self, image, timeout=None):
        if isinstance(image, str):
            image = load_image(image, timeout=timeout)
        return self.image_processor(image, return_tensors="pt")

    def _forward(self, model_inputs, tile_size=None, tile_overlap=32, tile_batch_size=4):
        pixel_values = model_inputs["pixel_values"]
        return {"reconstruction": restore(self.model, pixel_values, tile_size, tile_overlap, tile_batch_size)}

    def postprocess(self, model_outputs):
        return self.image_processor.post_process(model_outputs["reconstruction"], output_type="pil")[0]
