"""Make the bundled example photos: scikit-image sample photographs degraded with mirage_hf.degradations.

    python examples/make_examples.py

The clean photographs ship with scikit-image (`skimage.data`, BSD-3 licence); each example is one degradation
of one photo with a fixed seed, so the files are reproducible.
"""

from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from mirage_hf import degradations

EXAMPLES = [  # (file name, skimage photo, degradation, parameters)
    ("noisy_astronaut.png", "astronaut", "noise", {"sigma": 25}),
    ("rainy_coffee.png", "coffee", "rain", {}),
    ("hazy_rocket.png", "rocket", "haze", {}),
    ("dark_chelsea.png", "chelsea", "lowlight", {}),
]


def main() -> None:
    folder = Path(__file__).parent
    for index, (name, photo, kind, params) in enumerate(EXAMPLES):
        clean = Image.fromarray(getattr(data, photo)()).convert("RGB")
        clean.thumbnail((256, 256))
        degraded = degradations.degrade(np.asarray(clean), kind, seed=index, **params)
        Image.fromarray(np.asarray(degraded)).save(folder / name, optimize=True)
        print(f"wrote {folder / name}")


if __name__ == "__main__":
    main()
