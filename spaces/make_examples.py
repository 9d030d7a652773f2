"""Make the example photos in examples/ (run from anywhere: `python spaces/make_examples.py`).

clean/: scikit-image sample photographs (`skimage.data`: astronaut and rocket public domain, coffee and chelsea
CC0), downscaled to a 384-pixel long side. degraded/: one degradation of each from `mirage_hf.degradations`
with a fixed seed, for the Restore tab. Everything is reproducible from this script.
"""

from pathlib import Path

from PIL import Image
from skimage import data

from mirage_hf import degradations

FOLDER = Path(__file__).parent / "examples"
PHOTOS = {  # skimage photo -> (degraded file name, degradation, parameters)
    "astronaut": ("noisy_astronaut.jpg", "noise", {"sigma": 25}),
    "coffee": ("rainy_coffee.jpg", "rain", {"amount": 0.8}),
    "rocket": ("hazy_rocket.jpg", "haze", {"beta": 1.5}),
    "chelsea": ("dark_chelsea.jpg", "lowlight", {"strength": 0.6}),
}


def main() -> None:
    (FOLDER / "clean").mkdir(parents=True, exist_ok=True)
    (FOLDER / "degraded").mkdir(parents=True, exist_ok=True)
    for seed, (photo, (degraded_name, kind, params)) in enumerate(PHOTOS.items()):
        clean = Image.fromarray(getattr(data, photo)()).convert("RGB")
        clean.thumbnail((384, 384), Image.Resampling.LANCZOS)
        clean.save(FOLDER / "clean" / f"{photo}.jpg", quality=90, optimize=True)
        degraded = degradations.degrade(clean, kind, seed=seed, **params)
        degraded.thumbnail((320, 320), Image.Resampling.LANCZOS)
        degraded.save(FOLDER / "degraded" / degraded_name, quality=92, optimize=True)


if __name__ == "__main__":
    main()
