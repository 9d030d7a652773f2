"""Tiny benchmark folder layouts written on the spot (a few 24x20 images per folder), good or broken."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

WIDTH, HEIGHT = 24, 20


def write_image(path: Path, seed: int, size: tuple[int, int] = (WIDTH, HEIGHT)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(array).save(path)
    return path


def write_corrupt(path: Path) -> Path:
    """A file with an image extension whose content is a truncated PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, 99)
    path.write_bytes(path.read_bytes()[:60])
    return path


def make_train_layout(root: Path) -> Path:
    for i, name in enumerate(["00001.bmp", "00002.bmp", "a1.jpg"]):
        write_image(root / "Denoise" / name, i)
    for n in (1, 2):
        write_image(root / "Derain" / "rainy" / f"rain-{n}.png", 10 + n)
        write_image(root / "Derain" / "gt" / f"norain-{n}.png", 20 + n)
    write_image(root / "Dehaze" / "original" / "0025.jpg", 30)
    for k, name in enumerate(["0025_0.8_0.04.jpg", "0025_0.9_0.08.jpg"]):
        write_image(root / "Dehaze" / "synthetic" / "part1" / name, 31 + k)
    for folder, (a, b) in {"Deblur": ("blur", "sharp"), "Enhance": ("low", "gt")}.items():
        for n in (1, 2):
            write_image(root / folder / a / f"{n}.png", 40 + n)
            write_image(root / folder / b / f"{n}.png", 50 + n)
    return root


def make_test_layout(root: Path, with_5deg: bool = True) -> Path:
    for i in range(2):
        write_image(root / "denoise" / "bsd68" / f"test{i:03d}.png", 100 + i, size=(33, 35))
    for n in (1, 2):
        write_image(root / "derain" / "Rain100L" / "input" / f"rain-{n:03d}.png", 110 + n)
        write_image(root / "derain" / "Rain100L" / "target" / f"norain-{n:03d}.png", 120 + n)
    write_image(root / "dehaze" / "input" / "0001_0.8_0.2.jpg", 130)
    write_image(root / "dehaze" / "target" / "0001.png", 131)
    if with_5deg:
        for folder, name in (("deblur", "gopro"), ("enhance", "lol")):
            write_image(root / folder / name / "input" / "1.png", 140)
            write_image(root / folder / name / "target" / "1.png", 141)
    return root


def make_cdd11_layout(root: Path, kinds=("low", "haze_rain")) -> Path:
    for split in ("train", "test"):
        for n in (1, 2):
            write_image(root / split / "clear" / f"{n}.png", 200 + n)
            for k, kind in enumerate(kinds):
                write_image(root / split / kind / f"{n}.png", 210 + 10 * k + n)
    return root
