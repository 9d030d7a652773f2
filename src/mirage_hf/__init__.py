"""mirage_hf: the MIRAGE all-in-one image restoration model (ICLR 2026) for the Hugging Face ecosystem.

Importing the package registers the model with the transformers Auto classes and the
`"image-restoration"` pipeline task.
"""

from .configuration_mirage import MirageConfig
from .image_processing_mirage import MirageImageProcessor
from .modeling_mirage import ImageRestorationOutput, MirageForImageRestoration, MiragePreTrainedModel
from .registration import register

register()

__all__ = [
    "ImageRestorationOutput",
    "MirageConfig",
    "MirageForImageRestoration",
    "MirageImageProcessor",
    "MiragePreTrainedModel",
]
