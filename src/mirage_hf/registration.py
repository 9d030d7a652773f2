"""Register MIRAGE with the transformers Auto classes and the `"image-restoration"` pipeline task."""

from __future__ import annotations

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageToImage,
)
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_mirage import MirageConfig
from .image_processing_mirage import MirageImageProcessor
from .modeling_mirage import MirageForImageRestoration

PIPELINE_TASK = "image-restoration"


def register() -> None:
    """Idempotent: safe to call more than once."""
    AutoConfig.register(MirageConfig.model_type, MirageConfig, exist_ok=True)
    AutoModel.register(MirageConfig, MirageForImageRestoration, exist_ok=True)
    AutoModelForImageToImage.register(MirageConfig, MirageForImageRestoration, exist_ok=True)
    AutoImageProcessor.register(MirageConfig, image_processor_classes={"pil": MirageImageProcessor}, exist_ok=True)
    if PIPELINE_TASK not in PIPELINE_REGISTRY.get_supported_tasks():
        from .pipeline_mirage import ImageRestorationPipeline

        PIPELINE_REGISTRY.register_pipeline(
            PIPELINE_TASK, pipeline_class=ImageRestorationPipeline, pt_model=AutoModelForImageToImage, type="image"
        )
