"""Image folders cut from real photographs that pip packages ship, for tests and benchmarks.

``photo_folder(root, photos, per_class, seed)`` writes an ImageFolder
(``root/<class>/<n>.png``) with one class per source region: each image is a
randomly placed, randomly sized crop of that region, saved at a random size
and aspect ratio (so the loader's non-square rule is exercised).  Classes
therefore differ the way a user's own photo classes do (colour, texture,
content), not by a synthetic rule.

Sources:

- ``sklearn_photos()``: the two photographs bundled with scikit-learn (a
  temple in China, a flower), always available;
- ``skimage_photos()``: the colour photographs bundled in scikit-image's wheel
  (astronaut, cat, coffee, Hubble deep field, stained tissue, motorcycle,
  retina, rocket), if scikit-image is installed.

``split_regions(photos, k)`` cuts each photograph into ``k`` vertical bands,
one class per band, when more classes are needed than there are photographs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["photo_folder", "skimage_photos", "sklearn_photos", "split_regions"]


def sklearn_photos() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_sample_images

    bunch = load_sample_images()
    return {Path(f).stem: img for f, img in zip(bunch.filenames, bunch.images)}


def skimage_photos() -> dict[str, np.ndarray]:
    """scikit-image's bundled colour photographs (an ImportError if it is not installed)."""
    from skimage import data

    names = ("astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "motorcycle_left",
             "retina", "rocket")
    out = {}
    for name in names:
        loader = getattr(data, name, None)
        if loader is None:
            continue
        img = loader()
        if isinstance(img, tuple):
            img = img[0]
        if img.ndim == 3 and img.shape[2] >= 3:
            out[name] = np.ascontiguousarray(img[:, :, :3])
    return out


def split_regions(photos: dict[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
    """Each photograph cut into ``k`` vertical bands: ``k * len(photos)`` classes."""
    out = {}
    for name, img in photos.items():
        w = img.shape[1]
        for i in range(k):
            out[f"{name}-{i}"] = img[:, i * w // k : (i + 1) * w // k]
    return out


def photo_folder(root: str | Path, photos: dict[str, np.ndarray], per_class: int, seed: int = 0,
                 min_fraction: float = 0.25, max_fraction: float = 0.6) -> Path:
    """Write ``per_class`` random crops of each photograph as PNGs under ``root/<name>/``."""
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    for name, img in photos.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        h, w = img.shape[:2]
        for n in range(per_class):
            side = int(rng.uniform(min_fraction, max_fraction) * min(h, w))
            aspect = rng.uniform(0.75, 1.33)
            ch, cw = min(h, max(8, int(side * aspect))), min(w, max(8, int(side / aspect)))
            top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            crop = Image.fromarray(img[top : top + ch, left : left + cw])
            out = int(rng.integers(40, 97))
            crop.resize((out, max(8, int(out * ch / cw))), Image.BILINEAR).save(folder / f"{n:04d}.png")
    return root
