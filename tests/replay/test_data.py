"""replay/data.py: both CIFAR batch formats, image folders, synthetic data, the 2012 crops."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from replay.data import (Cropping, DataError, centre_mean, load_cifar_dir, load_image_folder,
                         synthetic_dataset, evaluation_views, train_batch)

SIDE = 8  # small "CIFAR" images keep the files tiny; the loaders take the side as a parameter


def _write(path, obj, *, python2_keys: bool):
    if python2_keys:  # what the public CIFAR-10 pickles look like when read by Python 3
        obj = {k.encode(): v for k, v in obj.items()}
    path.write_bytes(pickle.dumps(obj, protocol=2))


def make_cifar(folder, *, columns: bool, n=20, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir()
    features = 3 * SIDE * SIDE
    batches = []
    for name in ["data_batch_1", "data_batch_2", "test_batch"]:
        images = rng.integers(0, 256, size=(n, features), dtype=np.uint8)
        labels = rng.integers(0, classes, size=n).tolist()
        batches.append((images, labels))
        data = images.T.copy() if columns else images
        _write(folder / name, {"data": data, "labels": labels}, python2_keys=not columns)
    meta = {"label_names": [f"c{i}".encode() for i in range(classes)]}
    if columns:
        meta["data_mean"] = np.full((features, 1), 7.0, dtype=np.float32)
    _write(folder / "batches.meta", meta, python2_keys=not columns)
    return batches


@pytest.mark.parametrize("columns", [False, True])
def test_both_cifar_formats_give_the_same_images(tmp_path, columns):
    batches = make_cifar(tmp_path / "cifar", columns=columns)
    data = load_cifar_dir(tmp_path / "cifar", side=SIDE)
    (b1, l1), (b2, l2), (tb, tl) = batches
    assert data.train.data.shape == (3 * SIDE * SIDE, 40)
    np.testing.assert_array_equal(data.train.data[:, :20], b1.T)
    np.testing.assert_array_equal(data.train.data[:, 20:], b2.T)
    np.testing.assert_array_equal(data.test.labels, tl)
    assert data.label_names == ("c0", "c1", "c2")
    if columns:  # cuda-convnet's meta carries the mean it subtracts
        assert np.all(data.mean == 7.0) and "cuda-convnet" in data.description
    else:
        np.testing.assert_allclose(data.mean, np.concatenate([b1, b2]).mean(axis=0), rtol=1e-6)


def test_bad_cifar_data_names_the_file(tmp_path):
    make_cifar(tmp_path / "cifar", columns=False)
    (tmp_path / "cifar" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="test_batch: not a readable Python pickle"):
        load_cifar_dir(tmp_path / "cifar", side=SIDE)
    (tmp_path / "cifar" / "test_batch").unlink()
    with pytest.raises(DataError, match="test_batch: missing"):
        load_cifar_dir(tmp_path / "cifar", side=SIDE)
    with pytest.raises(DataError, match="no such folder"):
        load_cifar_dir(tmp_path / "nowhere", side=SIDE)


def test_label_out_of_range_and_wrong_shape(tmp_path):
    make_cifar(tmp_path / "cifar", columns=False, classes=3)
    bad = {"data": np.zeros((4, 3 * SIDE * SIDE), np.uint8), "labels": [0, 1, 2, 5]}
    _write(tmp_path / "cifar" / "data_batch_2", bad, python2_keys=True)
    with pytest.raises(DataError, match=r"data_batch_2: label 5 is outside 0\.\.2"):
        load_cifar_dir(tmp_path / "cifar", side=SIDE)
    _write(tmp_path / "cifar" / "data_batch_2", {"data": np.zeros((4, 17), np.uint8), "labels": [0] * 4},
           python2_keys=True)
    with pytest.raises(DataError, match=r"data_batch_2: data has shape \(4, 17\)"):
        load_cifar_dir(tmp_path / "cifar", side=SIDE)


def test_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)
    for cls in ["n01440764", "n01443537"]:
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(10):
            pixels = rng.integers(0, 256, size=(12, 20, 3), dtype=np.uint8)  # wider than tall
            Image.fromarray(pixels).save(tmp_path / "imgs" / cls / f"{i}.png")
    data = load_image_folder(tmp_path / "imgs", side=SIDE)
    assert data.label_names == ("n01440764", "n01443537")
    assert len(data.train) == 18 and len(data.test) == 2  # every tenth image held out
    assert data.train.data.shape == (3 * SIDE * SIDE, 18)
    (tmp_path / "imgs" / "n01440764" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    with pytest.raises(DataError, match="broken.jpg: cannot decode"):
        load_image_folder(tmp_path / "imgs", side=SIDE)


def test_synthetic_is_deterministic_learnable_and_says_so():
    a = synthetic_dataset(8, 4, train_size=200, test_size=50, seed=3)
    b = synthetic_dataset(8, 4, train_size=200, test_size=50, seed=3)
    np.testing.assert_array_equal(a.train.data, b.train.data)
    assert a.synthetic and "SYNTHETIC" in a.description
    # Learnable: the nearest class mean of the training set classifies the test set well above chance.
    means = np.stack([a.train.data[:, a.train.labels == k].mean(axis=1) for k in range(4)])
    guess = np.argmin(((a.test.data.T[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (guess == a.test.labels).mean() > 0.9


def test_crops_flips_and_mean():
    data = synthetic_dataset(8, 3, train_size=64, test_size=8, seed=0)
    crop = Cropping(side=8, border=2, per_image=False)
    x, labels = train_batch(data, np.arange(64), crop, np.random.default_rng(0))
    assert x.shape == (3 * 4 * 4, 64) and labels.shape == (1, 64)
    # One offset and flip per chunk of 32: every image of a chunk is cut the same way, so
    # (image − crop) relations hold per chunk; check by recomputing each chunk's crop.
    images = data.train.data.reshape(3, 8, 8, 64)
    mean = centre_mean(data, crop).reshape(3, 4, 4, 1)
    for chunk in (slice(0, 32), slice(32, 64)):
        got = x[:, chunk].reshape(3, 4, 4, -1) + mean
        found = [(y, x0, f) for y in range(5) for x0 in range(5) for f in (False, True)
                 if np.allclose((images[:, y:y + 4, x0:x0 + 4, chunk][:, :, ::-1] if f
                                 else images[:, y:y + 4, x0:x0 + 4, chunk]), got)]
        assert len(found) >= 1
    views = evaluation_views(data, np.arange(8), crop, multiview=True)
    assert len(views) == 10
    np.testing.assert_allclose(views[2], evaluation_views(data, np.arange(8), crop, multiview=False)[0])
    cifar = Cropping(side=8, border=2, per_image=True)
    assert len(evaluation_views(data, np.arange(8), cifar, multiview=True)) == 9


def test_colour_noise_is_divided_by_one_plus_c():
    data = synthetic_dataset(8, 3, train_size=32, test_size=8, seed=0)
    crop = Cropping(side=8, border=0, per_image=True)
    plain, _ = train_batch(data, np.arange(32), crop, np.random.default_rng(5))
    noisy, _ = train_batch(data, np.arange(32), crop, np.random.default_rng(5), color_noise=0.1)
    # The same crops (border 0); noise adds one RGB offset per image, then everything is / 1.1.
    offset = (noisy * 1.1 - plain).reshape(3, 64, 32)
    np.testing.assert_allclose(offset, offset[:, :1, :].repeat(64, axis=1), atol=1e-3)
    assert np.abs(offset).max() > 0.1
