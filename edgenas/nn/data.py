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

Images become float32 N x C x H x W in [0, 1].  Every image is made square by
the same documented rule: **centre crop to a square (the shorter side), then
resize** (bilinear, antialiased when shrinking).  An image folder is stored at
the median shorter side of its images (at most 256 pixels), and the search
resizes once more to the resolution the space asks for.  Images of one folder
are converted to the folder's majority mode (greyscale ``L`` or ``RGB``; the
log says how many were converted); 16-bit images are scaled to [0, 1], never
clipped.  Pixels must be finite, labels integers, and there must be at least
two classes.  The train/validation split is
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

__all__ = ["PREPROCESSING", "Dataset", "Split", "centre_crop", "load_data"]

#: How an image becomes a model input; recorded in every run and exported bundle (metadata.json).
PREPROCESSING = {
    "crop": "centre square: the central min(H, W) x min(H, W) pixels",
    "resize": "bilinear to resolution x resolution, antialiased when shrinking",
    "scale": "8-bit pixels / 255 (16-bit / 65535) to [0, 1]",
    "mode": "the training data's mode: L (1 channel; RGB averaged) or RGB (3 channels; grey repeated)",
    "normalize": "(x - mean) / std per channel, mean and std of the training split",
}

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


@dataclass(frozen=True)
class Dataset:
    """Images ``x`` (N x C x H x W float32 in [0, 1]), labels ``y`` (N int64), class names."""

    name: str
    x: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    notes: tuple[str, ...] = ()  # what loading changed (converted modes, cropped images), for the log

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

    @property
    def majority_rate(self) -> float:
        """The accuracy of always answering the most frequent class: the chance level."""
        return float(np.bincount(self.y).max() / len(self.y))

    def resized(self, resolution: int) -> Dataset:
        """The same images at ``resolution`` x ``resolution`` (bilinear, antialiased when shrinking)."""
        if resolution == self.resolution and self.x.shape[3] == resolution:
            return self
        import torch
        import torch.nn.functional as F

        x = F.interpolate(torch.from_numpy(self.x), size=(resolution, resolution), mode="bilinear", align_corners=False,
                          antialias=resolution < self.resolution)
        return Dataset(self.name, x.numpy().astype(np.float32).clip(0, 1), self.y, self.classes, self.notes)


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
    if x.shape[0] == 0 or min(x.shape[1:]) == 0:
        raise DataError(f"{source}: holds no images (shape {x.shape})")
    x = centre_crop(x)
    if np.issubdtype(x.dtype, np.bool_):
        return x.astype(np.float32)
    if np.issubdtype(x.dtype, np.integer):
        top = 65535.0 if x.max(initial=0) > 255 else 255.0  # 16-bit images scaled, not clipped
        return x.astype(np.float32) / top
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{source}: pixels must be numbers, got dtype {x.dtype}")
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        bad = int(np.sum(~np.isfinite(x).reshape(len(x), -1).all(axis=1)))
        raise DataError(f"{source}: {bad} image(s) have NaN or infinite pixels; clean or drop them")
    low, high = float(x.min()), float(x.max())
    if low < 0 or high > 255:
        raise DataError(f"{source}: float pixels must lie in [0, 1] or [0, 255], got [{low:g}, {high:g}]")
    return x / 255.0 if high > 1.0 else x


def centre_crop(x: np.ndarray) -> np.ndarray:
    """N x C x H x W images cropped to their centre square (the documented rule for non-square images)."""
    h, w = x.shape[2], x.shape[3]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return x[:, :, top : top + side, left : left + side]


def _check_labels(y: np.ndarray, n: int, source: str) -> np.ndarray:
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{source}: y must hold one label per image ({n}), got shape {y.shape}")
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise DataError(f"{source}: labels must be integers 0..K-1, got {y.dtype} values (map class names to numbers)")
    if not np.issubdtype(y.dtype, np.integer):
        if np.all(np.isfinite(y)) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise DataError(f"{source}: labels must be integers, got {y.dtype} values that are not whole numbers")
    if y.min(initial=0) < 0:
        raise DataError(f"{source}: labels must be non-negative integers")
    counts = np.bincount(y)
    empty = [int(c) for c in np.flatnonzero(counts == 0)]
    if empty:
        raise DataError(f"{source}: class(es) {empty} have no images; labels must be 0..{len(counts) - 1} with every class present")
    if len(counts) < 2:
        raise DataError(f"{source}: all images have one label; a classifier needs at least two classes")
    if np.min(counts) < 2:
        raise DataError(f"{source}: every class needs at least 2 images (for a train/validation split)")
    return y.astype(np.int64)


def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    return Dataset("digits", x, digits.target.astype(np.int64), tuple(str(i) for i in range(10)))


def _npz(path: Path) -> Dataset:
    import zipfile

    source = f"npz file {path}"
    if not path.is_file():
        raise DataError(f"{source} does not exist")
    try:
        with path.open("rb") as f:  # opened here so that it is closed whatever np.load finds inside
            loaded = np.load(f, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise DataError(f"{source} is a single array (.npy), not an .npz archive; save it with "
                                "np.savez(FILE, x=..., y=...)")
            with loaded as archive:
                missing = {"x", "y"} - set(archive.files)
                if missing:
                    raise DataError(f"{source} lacks array(s) {', '.join(sorted(missing))}; it needs x (images) and "
                                    "y (labels)")
                x, y = archive["x"], archive["y"]
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{source} cannot be read as .npz: {exc}") from None
    except MemoryError:
        raise DataError(f"{source} is too large to load into memory") from None
    x = _to_nchw(np.asarray(x), source)
    y = _check_labels(np.asarray(y), len(x), source)
    return Dataset(path.stem, x, y, tuple(str(i) for i in range(int(y.max()) + 1)))


#: The largest side an image folder is stored at (the search resizes further).
MAX_STORED_SIDE = 256
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def _pixels(img, mode: str):
    """An opened PIL image as an 8-bit PIL image of ``mode`` (L or RGB).

    Deep images (16-bit, 32-bit integer, float) are scaled to 8 bits, never
    clipped; transparent pixels are laid on white.
    """
    from PIL import Image

    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        a = np.asarray(img, dtype=np.float64)
        if not np.all(np.isfinite(a)):
            raise ValueError("it has NaN or infinite pixels")
        peak = a.max(initial=0)
        top = 1.0 if img.mode == "F" and peak <= 1.0 else (255.0 if peak <= 255 else 65535.0)
        img = Image.fromarray(np.clip(np.round(a / top * 255.0), 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return img.convert(mode)


def _imagefolder(root: Path) -> Dataset:
    source = f"image folder {root}"
    if not root.is_dir():
        raise DataError(f"{source} does not exist")
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise DataError("reading an image folder needs Pillow: pip install pillow") from None
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{source} has no class sub-folders; put each class's images in a folder named after it")
    if len(classes) < 2:
        raise DataError(f"{source} has one class sub-folder ({classes[0]}); a classifier needs at least two")
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        found = sorted(p for p in (root / name).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise DataError(f"{source}: class '{name}' has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        files += [(f, label) for f in found]

    bomb = (Image.DecompressionBombError, Image.DecompressionBombWarning)
    import warnings

    def opened(file: Path):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                return Image.open(file)
        except bomb:
            raise DataError(f"{source}: {file} is too many pixels to be a photo (a decompression bomb?); "
                            "remove it or shrink it") from None
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise DataError(f"{source}: cannot read image {file}: {exc}") from None

    # Pass 1 (headers only): each image's mode and size.
    modes, sides = [], []
    for file, _ in files:
        with opened(file) as img:
            modes.append("L" if img.mode in _GREY_MODES else "RGB")
            sides.append(min(img.size))
    mode = "RGB" if modes.count("RGB") >= modes.count("L") else "L"
    side = int(min(np.median(sides), MAX_STORED_SIDE))
    converted = sum(m != mode for m in modes)
    notes = []
    if converted:
        notes.append(f"{source}: {converted} of {len(files)} image(s) converted to the folder's majority mode {mode}")

    # Pass 2: decode, centre-crop to a square, resize to the common side.
    images = np.empty((len(files), side, side, 3 if mode == "RGB" else 1), dtype=np.uint8)
    non_square = 0
    for i, (file, _) in enumerate(files):
        try:
            with opened(file) as img:  # opened() turns a decompression bomb into a DataError (Pillow checks on open)
                img = _pixels(img, mode)
                w, h = img.size
                if w != h:
                    non_square += 1
                    s = min(w, h)
                    img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
                a = np.asarray(img.resize((side, side), Image.BILINEAR), dtype=np.uint8)
        except DataError:
            raise
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise DataError(f"{source}: cannot read image {file}: {exc}") from None
        except MemoryError:
            raise DataError(f"{source}: image {file} is too large to load") from None
        images[i] = a.reshape(side, side, -1)
    if non_square:
        notes.append(f"{source}: {non_square} non-square image(s) centre-cropped to a square")
    x = images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    y = _check_labels(np.array([label for _, label in files]), len(x), source)
    return Dataset(root.name, x, y, tuple(classes), tuple(notes))


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


#: ``KIND`` of ``--data KIND:PATH`` -> (its loader, a Path -> Dataset; what PATH is, for messages).  ``digits``
#: takes no path.
_LOADERS: dict = {}


def register_data_loader(kind: str, loader, *, path: str = "PATH", replace: bool = False) -> None:
    """Make ``--data KIND:PATH`` load with ``loader(Path(PATH))`` (which returns a :class:`Dataset` and raises
    :class:`DataError` on bad input); ``path`` names what PATH is in messages (FILE, DIR).  A kind already taken is
    refused unless ``replace``."""
    if not kind.isidentifier() or kind == "digits":
        raise ValueError(f"data kind {kind!r} must be a name other than digits")
    if kind in _LOADERS and not replace:
        raise ValueError(f"data kind {kind!r} is registered already (pass replace=True to replace it)")
    _LOADERS[kind] = (loader, path)


def load_data(spec: str) -> Dataset:
    """Load the dataset named by ``spec`` (see the module docstring)."""
    kind, _, arg = spec.partition(":")
    if kind == "digits" and not arg:
        return _digits()
    if kind in _LOADERS and arg:
        return _LOADERS[kind][0](Path(arg))
    raise DataError(f"unknown --data {spec!r}; use digits, " + ", ".join(f"{k}:{p}" for k, (_, p) in _LOADERS.items()))


register_data_loader("npz", _npz, path="FILE")
register_data_loader("imagefolder", _imagefolder, path="DIR")
register_data_loader("cifar10", _cifar10, path="DIR")
