import pickle

import numpy as np
import pytest

from edgenas.data import load_data
from edgenas.errors import DataError


def test_digits_is_the_bundled_default():
    data = load_data("digits")
    assert data.x.shape == (1797, 1, 8, 8) and data.x.dtype == np.float32
    assert 0.0 <= data.x.min() and data.x.max() <= 1.0
    assert data.num_classes == 10 and data.in_channels == 1 and data.resolution == 8


def test_split_is_stratified_and_fixed_by_seed():
    data = load_data("digits")
    a, b, c = data.split(0.2, seed=0), data.split(0.2, seed=0), data.split(0.2, seed=1)
    assert np.array_equal(a.val, b.val) and not np.array_equal(a.val, c.val)
    assert set(a.train).isdisjoint(a.val) and len(a.train) + len(a.val) == 1797
    counts = np.bincount(data.y[a.val])
    assert counts.min() >= 30  # every class in validation
    x, y = a.normalised("train")
    assert abs(float(x.mean())) < 1e-3 and abs(float(x.std()) - 1) < 1e-2
    assert a.mean.shape == (1,) and a.std.shape == (1,)


def test_resize():
    data = load_data("digits").resized(16)
    assert data.x.shape == (1797, 1, 16, 16)


def test_npz_layouts(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 4)
    np.savez(tmp_path / "hwc.npz", x=rng.integers(0, 256, (12, 10, 10, 3), dtype=np.uint8), y=y)
    np.savez(tmp_path / "gray.npz", x=rng.random((12, 10, 10)).astype(np.float32), y=y)
    hwc, gray = load_data(f"npz:{tmp_path / 'hwc.npz'}"), load_data(f"npz:{tmp_path / 'gray.npz'}")
    assert hwc.x.shape == (12, 3, 10, 10) and hwc.x.max() <= 1.0 and hwc.num_classes == 3
    assert gray.x.shape == (12, 1, 10, 10)


@pytest.mark.parametrize(
    "arrays, fragment",
    [
        ({"x": np.zeros((4, 8, 8))}, r"lacks array\(s\) y"),
        ({"x": np.zeros((4, 8, 8)), "y": np.array([0, 0, 2, 2])}, r"class\(es\) \[1\] have no images"),
        ({"x": np.zeros((4, 8)), "y": np.array([0, 0, 1, 1])}, "images must be N x H x W"),
        ({"x": np.zeros((4, 8, 8)), "y": np.array([0, 1, 1])}, "one label per image"),
        ({"x": np.zeros((4, 8, 6)), "y": np.array([0, 0, 1, 1])}, "must be square"),
    ],
)
def test_npz_errors(tmp_path, arrays, fragment):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError, match=fragment):
        load_data(f"npz:{tmp_path / 'd.npz'}")


def test_imagefolder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    data = load_data(f"imagefolder:{tmp_path}")
    assert data.classes == ("cat", "dog") and data.x.shape == (6, 3, 20, 20)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="class 'empty' has no images"):
        load_data(f"imagefolder:{tmp_path}")
    (tmp_path / "empty" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="cannot read image .*broken.png"):
        load_data(f"imagefolder:{tmp_path}")


def _cifar_batch(n, rng):
    return {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": [int(i % 10) for i in range(n)]}


def test_cifar10_python_format_and_safe_unpickling(tmp_path):
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (tmp_path / name).write_bytes(pickle.dumps(_cifar_batch(20, rng)))
    data = load_data(f"cifar10:{tmp_path}")
    assert data.x.shape == (120, 3, 32, 32) and data.num_classes == 10 and data.classes[0] == "airplane"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("touch pwned",))

    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(DataError, match="test_batch is not a CIFAR-10 batch .*refusing to load posix.system"):
        load_data(f"cifar10:{tmp_path}")
    assert not (tmp_path / "pwned").exists()


def test_unknown_specs():
    with pytest.raises(DataError, match="unknown --data 'mnist'; use digits, npz:FILE"):
        load_data("mnist")
    with pytest.raises(DataError, match="npz file .* does not exist"):
        load_data("npz:/nonexistent.npz")
    with pytest.raises(DataError, match="lacks data_batch_1"):
        load_data("cifar10:/tmp")
