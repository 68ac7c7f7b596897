"""replay/data.py: both CIFAR batch formats, image folders, synthetic data, the 2012 crops."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from replay.data import (Cropping, DataError, centre_mean, evaluation_views, load_batch_folder, load_cifar_dir,
                         load_image_folder, parse_range, synthetic_dataset, train_batch)

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


# --- cuda-convnet batch files by number (--train-range / --test-range) ----------------------------

def make_batch_folder(folder, *, numbers=(1, 2, 3), n=12, classes=3, seed=1, with_pca=False, per_file=None):
    """cuda-convnet's own layout: a column per image, uint8, data_mean and num_vis in the meta."""
    rng = np.random.default_rng(seed)
    folder.mkdir()
    features = 3 * SIDE * SIDE
    written = {}
    for number in numbers:
        images = rng.integers(0, 256, size=(features, n), dtype=np.uint8)
        labels = rng.integers(0, classes, size=n).tolist()
        written[number] = (images, labels)
        _write(folder / f"data_batch_{number}", {"data": images, "labels": labels}, python2_keys=False)
    meta = {"data_mean": np.full((features, 1), 5.0, dtype=np.float32), "num_vis": features,
            "label_names": [f"k{i}" for i in range(classes)]}
    if with_pca:
        meta["color_pca"] = (np.array([3.0, 2.0, 1.0], dtype=np.float32), np.eye(3, dtype=np.float32))
    if per_file:
        meta["num_cases_per_batch"] = per_file
    _write(folder / "batches.meta", meta, python2_keys=False)
    return written


def test_ranges_parse_as_convnet_py_did():
    assert parse_range("1-5", "--train-range") == [1, 2, 3, 4, 5]
    assert parse_range("6", "--test-range") == [6]
    for bad in ("5-1", "a", "1-2-3", ""):
        with pytest.raises(DataError, match="--train-range"):
            parse_range(bad, "--train-range")


def test_batch_folder_reads_the_named_files_when_visited(tmp_path):
    written = make_batch_folder(tmp_path / "b")
    data = load_batch_folder(tmp_path / "b", [1, 2], [3])
    assert data.size == SIDE and data.label_names == ("k0", "k1", "k2") and np.all(data.mean == 5.0)
    parts = data.train_parts(batch_size=10_000)  # the files themselves, whatever the batch size
    assert [p.number for p in parts] == [1, 2] and [p.cases for p in parts] == [12, 12]
    first = parts[0].load()
    assert first.data.dtype == np.uint8  # kept as stored: a quarter of float32's memory
    np.testing.assert_array_equal(first.data, written[1][0])
    assert first.labels.tolist() == written[1][1]
    [test] = data.test_parts()
    np.testing.assert_array_equal(test.load().data, written[3][0])
    assert "train 1-2, test 3" in data.description
    # crops of uint8 images come out float32 with the mean subtracted
    crop = Cropping(SIDE, 1, per_image=True)
    x, labels = train_batch(data, np.arange(4), crop, np.random.default_rng(0), source=first)
    assert x.dtype == np.float32 and labels.tolist() == [written[1][1][:4]]
    [view] = evaluation_views(data, np.arange(3), crop, multiview=False, source=test.load())
    centre = written[3][0].reshape(3, SIDE, SIDE, -1)[:, 1:-1, 1:-1, :3].reshape(-1, 3)
    np.testing.assert_allclose(view, centre.astype(np.float32) - 5.0)


def test_batch_folder_colour_pca_comes_from_the_meta_when_it_has_one(tmp_path):
    make_batch_folder(tmp_path / "b", with_pca=True, per_file=12)
    sigma, vectors = load_batch_folder(tmp_path / "b", [1], [2]).color_pca()
    assert sigma.tolist() == [3.0, 2.0, 1.0] and np.array_equal(vectors, np.eye(3))


def test_batch_folder_errors_name_the_file(tmp_path):
    make_batch_folder(tmp_path / "b")
    with pytest.raises(DataError, match=r"data_batch_4: missing \(--test-range names batch 4\)"):
        load_batch_folder(tmp_path / "b", [1, 2], [4])
    (tmp_path / "b" / "data_batch_2").write_bytes(b"\x80\x02truncated")
    with pytest.raises(DataError, match="data_batch_2: not a readable Python pickle"):
        load_batch_folder(tmp_path / "b", [1, 2], [3])
    meta = pickle.loads((tmp_path / "b" / "batches.meta").read_bytes())
    del meta["data_mean"]
    (tmp_path / "b" / "batches.meta").write_bytes(pickle.dumps(meta))
    with pytest.raises(DataError, match="batches.meta: no data_mean"):
        load_batch_folder(tmp_path / "b", [1], [3])
