"""Datasets for accuracy evaluation: the bundled digits, or the user's images.

``--data`` takes one of:

- ``digits``: scikit-learn's handwritten digits (1,797 images, 8x8, grayscale,
  10 classes).  Real data that ships inside scikit-learn: no download.
- ``npz:FILE``: a NumPy ``.npz`` with ``x`` (N x H x W, N x H x W x C or
  N x C x H x W; uint8 0..255 or float) and ``y`` (N integer labels).
- ``imagefolder:DIR``: one sub-folder per class holding image files (any size;
  needs Pillow).
- ``cifar10:DIR``: the CIFAR-10 "python version" folder (``data_batch_1``..5,
  ``test_batch``, ``batches.meta``).  Those batches are Python pickles; they are
  read with an unpickler that only accepts plain containers and numpy arrays,
  never arbitrary objects.

Images become float32 N x C x H x W in [0, 1], resized (bilinear) to the
resolution the search space asks for.  The train/validation split is
stratified and fixed by the seed; per-channel mean and std of the training
split are kept (they normalise inputs in training, and exported models record
them).
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgenas.errors import DataError

__all__ = ["Dataset", "Split", "load_data"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


@dataclass(frozen=True)
class Dataset:
    """Images ``x`` (N x C x H x W float32 in [0, 1]), labels ``y`` (N int64), class names."""

    name: str
    x: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.x.shape[1])

    @property
    def resolution(self) -> int:
        return int(self.x.shape[2])

    def split(self, val_fraction: float = 0.2, seed: int = 0) -> Split:
        """Stratified train/validation split, fixed by ``seed``."""
        from sklearn.model_selection import train_test_split

        idx = np.arange(len(self.y))
        train, val = train_test_split(idx, test_size=val_fraction, random_state=seed, stratify=self.y)
        x_train = self.x[train]
        mean = x_train.mean(axis=(0, 2, 3))
        std = x_train.std(axis=(0, 2, 3)) + 1e-6
        return Split(self, np.sort(train), np.sort(val), mean.astype(np.float32), std.astype(np.float32))

    def resized(self, resolution: int) -> Dataset:
        """The same images at ``resolution`` x ``resolution`` (bilinear)."""
        if resolution == self.resolution and self.x.shape[3] == resolution:
            return self
        import torch
        import torch.nn.functional as F

        x = F.interpolate(torch.from_numpy(self.x), size=(resolution, resolution), mode="bilinear", align_corners=False)
        return Dataset(self.name, x.numpy().astype(np.float32), self.y, self.classes)


@dataclass(frozen=True)
class Split:
    """Index arrays of a dataset's train and validation parts, with training statistics."""

    data: Dataset
    train: np.ndarray
    val: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    def normalised(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        idx = self.train if part == "train" else self.val
        x = (self.data.x[idx] - self.mean[None, :, None, None]) / self.std[None, :, None, None]
        return x.astype(np.float32), self.data.y[idx]


def _to_nchw(x: np.ndarray, source: str) -> np.ndarray:
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        if x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
            x = x.transpose(0, 3, 1, 2)
    else:
        raise DataError(f"{source}: images must be N x H x W, N x H x W x C or N x C x H x W, got shape {x.shape}")
    if x.shape[2] != x.shape[3]:
        raise DataError(f"{source}: images must be square for now, got {x.shape[2]} x {x.shape[3]}")
    if np.issubdtype(x.dtype, np.integer):
        return x.astype(np.float32) / 255.0
    x = x.astype(np.float32)
    return x / 255.0 if x.max(initial=0) > 1.0 else x


def _check_labels(y: np.ndarray, n: int, source: str) -> np.ndarray:
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{source}: y must hold one label per image ({n}), got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise DataError(f"{source}: labels must be integers, got {y.dtype}")
    if y.min(initial=0) < 0:
        raise DataError(f"{source}: labels must be non-negative integers")
    counts = np.bincount(y)
    empty = [int(c) for c in np.flatnonzero(counts == 0)]
    if empty:
        raise DataError(f"{source}: class(es) {empty} have no images; labels must be 0..{len(counts) - 1} with every class present")
    if np.min(counts) < 2:
        raise DataError(f"{source}: every class needs at least 2 images (for a train/validation split)")
    return y.astype(np.int64)


def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    return Dataset("digits", x, digits.target.astype(np.int64), tuple(str(i) for i in range(10)))


def _npz(path: Path) -> Dataset:
    source = f"npz file {path}"
    if not path.is_file():
        raise DataError(f"{source} does not exist")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = {"x", "y"} - set(archive.files)
            if missing:
                raise DataError(f"{source} lacks array(s) {', '.join(sorted(missing))}; it needs x (images) and y (labels)")
            x, y = archive["x"], archive["y"]
    except DataError:
        raise
    except (OSError, ValueError) as exc:
        raise DataError(f"{source} cannot be read as .npz: {exc}") from None
    x = _to_nchw(x, source)
    y = _check_labels(np.asarray(y), len(x), source)
    return Dataset(path.stem, x, y, tuple(str(i) for i in range(int(y.max()) + 1)))


def _imagefolder(root: Path) -> Dataset:
    source = f"image folder {root}"
    if not root.is_dir():
        raise DataError(f"{source} does not exist")
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise DataError("reading an image folder needs Pillow: pip install pillow") from None
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{source} has no class sub-folders; put each class's images in a folder named after it")
    images, labels, size, mode = [], [], None, None
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{source}: class '{name}' has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        for file in files:
            try:
                with Image.open(file) as img:
                    if mode is None:
                        mode = "L" if img.mode in ("1", "L", "I;16", "I") else "RGB"
                    img = img.convert(mode)
                    if size is None:
                        size = min(img.size)
                    img = img.resize((size, size), Image.BILINEAR)
                    images.append(np.asarray(img, dtype=np.uint8))
            except (UnidentifiedImageError, OSError) as exc:
                raise DataError(f"{source}: cannot read image {file}: {exc}") from None
            labels.append(label)
    x = _to_nchw(np.stack(images), source)
    y = _check_labels(np.array(labels), len(x), source)
    return Dataset(root.name, x, y, tuple(classes))


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only (what CIFAR-10 batches contain)."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _cifar10(root: Path) -> Dataset:
    source = f"CIFAR-10 folder {root}"
    files = [root / f"data_batch_{i}" for i in range(1, 6)] + [root / "test_batch"]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise DataError(f"{source} lacks {', '.join(missing)}: give the extracted 'cifar-10-batches-py' folder")
    xs, ys = [], []
    for file in files:
        try:
            batch = _ArrayUnpickler(io.BytesIO(file.read_bytes()), encoding="bytes").load()
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            labels = np.asarray(batch[b"labels"], dtype=np.int64)
        except (pickle.UnpicklingError, KeyError, TypeError, ValueError, EOFError) as exc:
            raise DataError(f"{source}: {file.name} is not a CIFAR-10 batch ({exc})") from None
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise DataError(f"{source}: {file.name} has data of shape {data.shape}, expected N x 3072")
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(labels)
    x = _to_nchw(np.concatenate(xs), source)
    y = _check_labels(np.concatenate(ys), len(x), source)
    names = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    return Dataset("cifar10", x, y, names)


def load_data(spec: str) -> Dataset:
    """Load the dataset named by ``spec`` (see the module docstring)."""
    kind, _, arg = spec.partition(":")
    if kind == "digits" and not arg:
        return _digits()
    loaders = {"npz": _npz, "imagefolder": _imagefolder, "cifar10": _cifar10}
    if kind in loaders and arg:
        return loaders[kind](Path(arg))
    raise DataError(
        f"unknown --data {spec!r}; use digits, npz:FILE, imagefolder:DIR or cifar10:DIR"
    )
