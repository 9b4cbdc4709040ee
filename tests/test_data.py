import pickle

import numpy as np
import pytest

from edgenas.errors import DataError
from edgenas.nn.data import load_data


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
        ({"x": np.full((4, 8, 8), np.nan), "y": np.array([0, 0, 1, 1])}, "4 image.s. have NaN or infinite pixels"),
        ({"x": np.zeros((4, 8, 8)), "y": np.array([0, 0, 0, 0])}, "one label; a classifier needs at least two"),
        ({"x": np.zeros((4, 8, 8)), "y": np.array(["a", "a", "b", "b"])}, "labels must be integers"),
        ({"x": np.zeros((4, 8, 8)), "y": np.array([0, 0.5, 1, 1])}, "not whole numbers"),
        ({"x": np.zeros((0, 8, 8)), "y": np.zeros(0, dtype=int)}, "holds no images"),
        ({}, r"lacks array\(s\) x, y"),
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


def test_npz_that_is_a_renamed_npy(tmp_path):
    np.save(tmp_path / "d.npy", np.zeros((4, 8, 8)))
    (tmp_path / "d.npy").rename(tmp_path / "d.npz")
    with pytest.raises(DataError, match=r"single array \(.npy\), not an .npz"):
        load_data(f"npz:{tmp_path / 'd.npz'}")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(DataError, match="cannot be read as .npz"):
        load_data(f"npz:{tmp_path / 'junk.npz'}")


def test_non_square_images_are_centre_cropped(tmp_path):
    from PIL import Image

    # 8 x 12 arrays: value 1 in the central 8 columns, 0 in the two columns either side.
    x = np.zeros((4, 8, 12), dtype=np.float32)
    x[:, :, 2:10] = 1.0
    np.savez(tmp_path / "wide.npz", x=x, y=np.array([0, 0, 1, 1]))
    data = load_data(f"npz:{tmp_path / 'wide.npz'}")
    assert data.x.shape == (4, 1, 8, 8) and data.x.min() == 1.0  # only the centre square is kept
    for cls in ("a", "b"):
        (tmp_path / "f" / cls).mkdir(parents=True)
        for i in range(2):  # tall 30 x 10 images: red bands top and bottom, blue centre square
            img = np.zeros((30, 10, 3), dtype=np.uint8)
            img[:, :, 0] = 255
            img[10:20, :, :] = (0, 0, 255)
            Image.fromarray(img).save(tmp_path / "f" / cls / f"{i}.png")
    data = load_data(f"imagefolder:{tmp_path / 'f'}")
    assert data.x.shape == (4, 3, 10, 10)
    assert np.allclose(data.x[:, 2], 1.0) and np.allclose(data.x[:, 0], 0.0)  # all blue, no red
    assert any("4 non-square image(s) centre-cropped" in n for n in data.notes)


def test_mixed_modes_and_deep_images(tmp_path):
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.fromarray(np.full((6, 6, 3), 200, dtype=np.uint8)).save(tmp_path / cls / f"rgb{i}.png")
    Image.fromarray(np.full((6, 6), 100, dtype=np.uint8), "L").save(tmp_path / "a" / "grey.png")
    # A 16-bit greyscale PNG at half of full scale must become 0.5, not be clipped to white.
    Image.fromarray(np.full((6, 6), 32768, dtype=np.uint16)).save(tmp_path / "b" / "deep.png")
    with Image.open(tmp_path / "b" / "deep.png") as deep_png:
        assert deep_png.mode.startswith("I")
    data = load_data(f"imagefolder:{tmp_path}")
    assert data.in_channels == 3 and data.x.shape == (6, 3, 6, 6)
    assert any("2 of 6 image(s) converted to the folder's majority mode RGB" in n for n in data.notes)
    names = sorted(p.name for p in (tmp_path / "a").iterdir()) + sorted(p.name for p in (tmp_path / "b").iterdir())
    deep = data.x[names.index("deep.png")]
    assert abs(float(deep.mean()) - 128 / 255) < 0.01
    grey = data.x[names.index("grey.png")]
    assert np.allclose(grey, 100 / 255, atol=1e-6)  # grey repeated over the three channels


def test_decompression_bombs_and_single_class_folders(tmp_path, monkeypatch):
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / cls / "0.png")
        Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / cls / "1.png")
    Image.fromarray(np.zeros((100, 100), dtype=np.uint8)).save(tmp_path / "b" / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 10,000 pixels are then a "bomb"
    with pytest.raises(DataError, match="huge.png is too many pixels"):
        load_data(f"imagefolder:{tmp_path}")
    monkeypatch.undo()
    only = tmp_path / "only"
    (only / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(only / "a" / "0.png")
    with pytest.raises(DataError, match="one class sub-folder .a.; a classifier needs at least two"):
        load_data(f"imagefolder:{only}")


def test_photo_folders_from_shipped_photographs(tmp_path):
    from edgenas.nn.photos import photo_folder, sklearn_photos, split_regions

    photos = split_regions(sklearn_photos(), 2)
    photo_folder(tmp_path, photos, per_class=5, seed=3)
    data = load_data(f"imagefolder:{tmp_path}")
    assert data.num_classes == 4 and len(data.y) == 20 and data.in_channels == 3
    assert data.majority_rate == 0.25


def test_a_registered_loader_serves_its_kind(tmp_path):
    from edgenas.nn.data import _LOADERS, load_data, register_data_loader

    digits = load_data("digits")
    register_data_loader("half", lambda path: digits, path="FILE")
    try:
        assert load_data(f"half:{tmp_path}") is digits
        with pytest.raises(DataError, match="half:FILE"):
            load_data("mnist:x")
        with pytest.raises(ValueError, match="registered already"):
            register_data_loader("npz", lambda path: digits)
    finally:
        _LOADERS.pop("half")
