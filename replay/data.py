"""Training data for a replay, in cuda-convnet's layout, with the 2012 providers' augmentation.

Three sources (SEMANTICS.md §7.2):
- a folder of CIFAR-10 python batches (`data_batch_1..5`, `test_batch`, `batches.meta`): the public
  pickles (rows are images, written by Python 2, so keys load as bytes) and cuda-convnet's own
  batches (a column per image, `data_mean` in the meta file) are told apart by their shapes;
- a folder of images, one subfolder per class (ILSVRC's `nXXXXXXXX/` layout works), with `train/`
  and `val/` subfolders if it has them; decoded with Pillow, the shorter side resized to the
  size asked for and the centre square cut out, as the 2012 batches were made;
- cuda-convnet's batch files chosen by number, as convnet.py's `--train-range 1-5 --test-range 6`
  did: `data_batch_N` pickles beside a `batches.meta` (data_mean, optionally num_vis, color_pca,
  num_cases_per_batch, label_names), read one file at a time, so ImageNet-sized folders fit;
- no data at all: a deterministic synthetic set whose labels can be learned. It says so in its
  description, which every run stores and prints.

Augmentation and mean subtraction follow convdata.py (SEMANTICS.md §7.3): random crops of
`border` pixels each side with flips (per chunk of 32 images for the ImageNet providers, per
image for cifar-cropped), the centre crop at test time or the 10/9 multiview crops, the centre
crop of the mean image subtracted, and colour noise along the data's RGB principal components.

Bad data stops with a `DataError` that names the file, before any training starts.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPEG", ".JPG", ".PNG")
CHUNK = 32  # ImageNet providers draw one crop offset and flip per 32 consecutive images (convdata.py)


class DataError(Exception):
    """Data that cannot be trained on; the message names the file."""


@dataclass(frozen=True, slots=True)
class Images:
    """Images in cuda-convnet's layout: `data` (3·S·S, n) in 0..255 (float32, or uint8 as batch
    files store it), a column per image with R, G and B planes; `labels` (n,) int64 class indices."""

    data: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return self.labels.shape[0]


@dataclass(frozen=True, slots=True)
class Dataset:
    description: str
    size: int                       # S: images are S×S
    label_names: tuple[str, ...]
    train: Images
    test: Images
    mean: np.ndarray                # (3·S·S,) float32: the training set's mean image
    synthetic: bool = False
    # Batch files (--train-range/--test-range): read when visited; `train`/`test` are then empty.
    train_files: tuple["BatchFile", ...] = ()
    test_files: tuple["BatchFile", ...] = ()
    pca: tuple[np.ndarray, np.ndarray] | None = None  # batches.meta's color_pca, where it has one

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def color_pca(self) -> tuple[np.ndarray, np.ndarray]:
        """(σ (3,), E (3, 3) eigenvectors as columns) of the training pixels' RGB covariance:
        what batches.meta's `color_pca` held (σ taken as √eigenvalue, SEMANTICS.md §7.3 [L]).
        Batch files without one: the first training file's pixels."""
        if self.pca is not None:
            return self.pca
        pixels = (self.train_files[0].load().data if self.train_files else self.train.data).reshape(3, -1)
        values, vectors = np.linalg.eigh(np.cov(pixels.astype(np.float64)))
        return np.sqrt(np.maximum(values, 0)).astype(np.float32), vectors.astype(np.float32)

    def train_parts(self, batch_size: int) -> list["Part"]:
        """The "batch files" of an epoch, in order: the real files, or the images cut into
        `batch_size` pieces (CIFAR's data_batch_1..5 hold 10,000 each)."""
        if self.train_files:
            return list(self.train_files)
        count = len(self.train)
        return [_Slice(self.train, start, min(start + batch_size, count)) for start in range(0, count, batch_size)] \
            or [_Slice(self.train, 0, 0)]

    def test_parts(self) -> list["Part"]:
        return list(self.test_files) if self.test_files else [_Slice(self.test, 0, len(self.test))]


class Part(Protocol):
    """One batch file of an epoch: `cases` (its image count) and `load()` -> Images."""

    @property
    def cases(self) -> int: ...

    def load(self) -> Images: ...


@dataclass(frozen=True, slots=True)
class _Slice:
    images: Images
    start: int
    stop: int

    @property
    def cases(self) -> int:
        return self.stop - self.start

    def load(self) -> Images:
        return Images(self.images.data[:, self.start:self.stop], self.images.labels[self.start:self.stop])


@dataclass(frozen=True, slots=True)
class BatchFile:
    """A cuda-convnet `data_batch_N` file, read when its turn comes (python_util/data.py:
    DataProvider.get_data_file_name)."""

    path: Path
    number: int
    side: int
    num_classes: int
    cases: int

    def load(self) -> Images:
        return _cifar_images(self.path, _unpickle(self.path), self.side, self.num_classes, keep_dtype=True)


# --- loading ------------------------------------------------------------------------------

def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"{path}: missing (a CIFAR-10 python batch folder has data_batch_1..5, "
                        f"test_batch and batches.meta)")
    try:
        with path.open("rb") as handle:
            loaded = pickle.load(handle, encoding="bytes")  # written by Python 2: str keys come back as bytes
    except Exception as error:  # a truncated or foreign file: say which
        raise DataError(f"{path}: not a readable Python pickle ({type(error).__name__}: {error})") from None
    if not isinstance(loaded, dict):
        raise DataError(f"{path}: expected a dict of arrays, found {type(loaded).__name__}")
    return {key.decode("latin-1") if isinstance(key, bytes) else key: value for key, value in loaded.items()}


def _cifar_images(path: Path, batch: dict, side: int, num_classes: int, keep_dtype: bool = False) -> Images:
    if "data" not in batch or "labels" not in batch:
        raise DataError(f"{path}: no 'data' or 'labels' entry (keys: {sorted(batch)})")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"], dtype=np.int64).reshape(-1)
    features = 3 * side * side
    if data.ndim != 2 or features not in data.shape:
        raise DataError(f"{path}: data has shape {data.shape}; expected ({features}, n) or (n, {features})")
    # cuda-convnet's own batches hold a column per image (3072, n); the public pickles a row (n, 3072).
    if data.shape[0] != features:
        data = data.T
    if data.shape[1] != labels.shape[0]:
        raise DataError(f"{path}: {data.shape[1]} images but {labels.shape[0]} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{path}: label {int(labels.max() if labels.max() >= num_classes else labels.min())} "
                        f"is outside 0..{num_classes - 1}")
    if keep_dtype and data.dtype == np.uint8:  # a quarter of the memory; crops convert to float32
        return Images(np.ascontiguousarray(data), labels)
    return Images(np.ascontiguousarray(data, dtype=np.float32), labels)


def parse_range(text: str, option: str) -> list[int]:
    """convnet.py's batch ranges (RangeOptionParser): "1-5" -> 1..5 inclusive, "6" -> [6]."""
    parts = text.strip().split("-")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) == 1:
        return numbers
    if len(numbers) == 2 and numbers[0] <= numbers[1]:
        return list(range(numbers[0], numbers[1] + 1))
    raise DataError(f"{option} {text!r}: expected a batch number (6) or an inclusive range (1-5)")


def load_batch_folder(folder: Path | str, train_range: list[int], test_range: list[int]) -> Dataset:
    """cuda-convnet batch files by number: `data_batch_N` for N in each range, beside batches.meta.
    Nothing but the meta file is read now (each file is checked to exist); a file is unpickled
    when the training or the test pass reaches it, as convdata.py's loader thread did."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    meta_path = folder / "batches.meta"
    meta = _unpickle(meta_path)
    if "data_mean" not in meta:
        raise DataError(f"{meta_path}: no data_mean (cuda-convnet's providers subtract it; convdata.py)")
    mean = np.asarray(meta["data_mean"], dtype=np.float32).reshape(-1)
    num_vis = int(meta.get("num_vis", mean.shape[0]))
    side = int(round((num_vis / 3) ** 0.5))
    if 3 * side * side != num_vis or mean.shape[0] != num_vis:
        raise DataError(f"{meta_path}: num_vis {num_vis} and data_mean of {mean.shape[0]} values do not "
                        "describe square RGB images")
    names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta.get("label_names", ())) \
        or tuple(str(i) for i in range(int(meta.get("num_classes", 10))))
    pca = None
    if "color_pca" in meta:  # (stdevs, eigenvectors as columns), ImageNetDP.init_commons
        try:
            stdevs, vectors = meta["color_pca"]
            pca = (np.asarray(stdevs, dtype=np.float32).reshape(3), np.asarray(vectors, dtype=np.float32).reshape(3, 3))
        except (TypeError, ValueError):
            raise DataError(f"{meta_path}: color_pca is not (3 standard deviations, 3×3 eigenvectors)") from None
    per_file = meta.get("num_cases_per_batch")

    def files(numbers: list[int], option: str) -> tuple[BatchFile, ...]:
        found = []
        for number in numbers:
            path = folder / f"data_batch_{number}"
            if not path.is_file():
                raise DataError(f"{path}: missing ({option} names batch {number})")
            cases = int(per_file) if per_file else len(_cifar_images(path, _unpickle(path), side, len(names)))
            found.append(BatchFile(path, number, side, len(names), cases))
        return tuple(found)

    train, test = files(train_range, "--train-range"), files(test_range, "--test-range")
    overlap = sorted({f.number for f in train} & {f.number for f in test})
    note = f"; batches {overlap} are in both ranges" if overlap else ""
    empty = Images(np.zeros((num_vis, 0), dtype=np.float32), np.zeros(0, dtype=np.int64))
    span = lambda numbers: f"{numbers[0]}-{numbers[-1]}" if len(numbers) > 1 else str(numbers[0])
    return Dataset(f"cuda-convnet batches in {folder} (train {span(train_range)}, test {span(test_range)}; "
                   f"{side}×{side}, {len(names)} classes{note})", side, names, empty, empty, mean,
                   train_files=train, test_files=test, pca=pca)


def load_cifar_dir(folder: Path | str, side: int = 32) -> Dataset:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    meta = _unpickle(folder / "batches.meta")
    names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta.get("label_names", ())) \
        or tuple(str(i) for i in range(10))
    train_files = sorted(folder.glob("data_batch_*"), key=lambda p: int(p.name.rsplit("_", 1)[1])
                         if p.name.rsplit("_", 1)[1].isdigit() else 10**9)
    if not train_files:
        raise DataError(f"{folder}: no data_batch_* files")
    parts = [_cifar_images(p, _unpickle(p), side, len(names)) for p in train_files]
    train = Images(np.concatenate([p.data for p in parts], axis=1), np.concatenate([p.labels for p in parts]))
    test_path = folder / "test_batch"
    test = _cifar_images(test_path, _unpickle(test_path), side, len(names))
    if "data_mean" in meta:  # cuda-convnet's batches carry the mean they were made with
        mean = np.asarray(meta["data_mean"], dtype=np.float32).reshape(-1)
        if mean.shape[0] != 3 * side * side:
            raise DataError(f"{folder / 'batches.meta'}: data_mean has {mean.shape[0]} values, not {3 * side * side}")
    else:
        mean = train.data.mean(axis=1, dtype=np.float64).astype(np.float32)
    kind = "cuda-convnet batches" if "data_mean" in meta else "CIFAR-10 python batches"
    return Dataset(f"{kind} in {folder} ({len(train)} train, {len(test)} test, {len(names)} classes)",
                   side, names, train, test, mean)


def _decode(path: Path, side: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            # The 2012 batches: shorter side scaled to S, then the centre S×S square.
            width, height = image.size
            scale = side / min(width, height)
            size = (max(side, round(width * scale)), max(side, round(height * scale)))
            image = image.resize(size, Image.BILINEAR)
            left, top = (size[0] - side) // 2, (size[1] - side) // 2
            pixels = np.asarray(image.crop((left, top, left + side, top + side)), dtype=np.float32)
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise DataError(f"{path}: cannot decode this image ({error})") from None
    return pixels.transpose(2, 0, 1).reshape(-1)  # (S, S, 3) -> R, G, B planes


def _folder_images(folder: Path, classes: list[str], side: int) -> Images:
    columns, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (folder / name).iterdir() if p.suffix in IMAGE_SUFFIXES) \
            if (folder / name).is_dir() else []
        for path in files:
            columns.append(_decode(path, side))
            labels.append(label)
    if not columns:
        raise DataError(f"{folder}: no images (.jpg, .jpeg, .png) in its class folders")
    return Images(np.stack(columns, axis=1), np.asarray(labels, dtype=np.int64))


def load_image_folder(folder: Path | str, side: int) -> Dataset:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    split = (folder / "train").is_dir() and (folder / "val").is_dir()
    root = folder / "train" if split else folder
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{root}: no class folders (one subfolder of images per class)")
    if split:
        train, test = _folder_images(root, classes, side), _folder_images(folder / "val", classes, side)
    else:
        every = _folder_images(root, classes, side)
        held_out = np.arange(len(every)) % 10 == 9  # a fixed tenth, so runs are comparable
        train = Images(every.data[:, ~held_out], every.labels[~held_out])
        test = Images(every.data[:, held_out], every.labels[held_out])
    mean = train.data.mean(axis=1, dtype=np.float64).astype(np.float32)
    how = "train/ and val/" if split else "every tenth image held out for testing"
    return Dataset(f"image folder {folder} ({len(train)} train, {len(test)} test, {len(classes)} classes; {how})",
                   side, tuple(classes), train, test, mean)


def synthetic_dataset(side: int, num_classes: int, *, train_size: int = 1024, test_size: int = 256,
                      seed: int = 0) -> Dataset:
    """Images whose class is a smooth random template plus noise: learnable, deterministic, and
    loudly not real."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(0.0, 1.0, size=(num_classes, 3, 4, 4)).astype(np.float32)
    repeat = -(-side // 4)

    def templates(labels: np.ndarray) -> np.ndarray:
        # each coarse 4×4 cell blown up to repeat×repeat pixels; only for the classes drawn (10,184 at 224²
        # would be 6 GB)
        blown = coarse[labels].repeat(repeat, axis=2).repeat(repeat, axis=3)[:, :, :side, :side]
        return blown.reshape(len(labels), -1)

    def draw(count: int) -> Images:
        labels = rng.integers(0, num_classes, size=count)
        noise = rng.normal(0.0, 1.0, size=(count, 3 * side * side)).astype(np.float32)
        data = 128.0 + 40.0 * templates(labels) + 20.0 * noise
        return Images(np.ascontiguousarray(np.clip(data, 0, 255).T, dtype=np.float32), labels.astype(np.int64))

    train, test = draw(train_size), draw(test_size)
    mean = train.data.mean(axis=1, dtype=np.float64).astype(np.float32)
    return Dataset(f"SYNTHETIC data ({num_classes} classes, {side}×{side}, seed {seed}): not images of "
                   f"anything; it only shows the machinery learns", side, tuple(f"class {i}" for i in range(num_classes)),
                   train, test, mean, synthetic=True)


# --- augmentation ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Cropping:
    """How a provider turns S×S images into the net's inner×inner input (convdata.py)."""

    side: int          # S of the data
    border: int        # --crop-border: inner = S − 2·border
    per_image: bool    # cifar-cropped draws an offset and flip per image; ImageNet providers per 32

    @property
    def inner(self) -> int:
        return self.side - 2 * self.border


def _crop(images: np.ndarray, side: int, inner: int, y0: int, x0: int, flip: bool) -> np.ndarray:
    view = images.reshape(3, side, side, -1)[:, y0:y0 + inner, x0:x0 + inner, :]
    if flip:
        view = view[:, :, ::-1, :]
    return view.reshape(3 * inner * inner, -1)


def centre_mean(dataset: Dataset, cropping: Cropping) -> np.ndarray:
    """The centre crop of the mean image, (3·inner², 1): subtracted whatever the crop or flip."""
    b = cropping.border
    return _crop(dataset.mean.reshape(-1, 1), cropping.side, cropping.inner, b, b, False)


def train_batch(dataset: Dataset, indices: np.ndarray, cropping: Cropping, rng: np.random.Generator,
                color_noise: float = 0.0, source: Images | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(data (3·inner², n) float32, labels (1, n) float32) for training: random crops and flips,
    mean subtracted, colour noise along the RGB principal components, then divided by (1 + c).
    `indices` index `source` (a loaded batch file; default the dataset's training images)."""
    source = dataset.train if source is None else source
    images = source.data[:, indices]
    out = np.empty((3 * cropping.inner ** 2, len(indices)), dtype=np.float32)
    step = 1 if cropping.per_image else CHUNK
    for start in range(0, len(indices), step):
        y0, x0 = rng.integers(0, 2 * cropping.border + 1, size=2)
        flip = bool(rng.integers(0, 2))
        out[:, start:start + step] = _crop(images[:, start:start + step], cropping.side, cropping.inner,
                                           int(y0), int(x0), flip)
    out -= centre_mean(dataset, cropping)
    if color_noise > 0:
        sigma, vectors = dataset.color_pca()
        noise = (vectors @ (sigma[:, None] * rng.normal(size=(3, len(indices))))).astype(np.float32)
        out = out.reshape(3, -1, len(indices)) + color_noise * noise[:, None, :]
        out = (out / (1.0 + color_noise)).reshape(-1, len(indices)).astype(np.float32)
    return out, source.labels[indices].astype(np.float32).reshape(1, -1)


def evaluation_views(dataset: Dataset, indices: np.ndarray, cropping: Cropping, multiview: bool,
                     source: Images | None = None) -> list[np.ndarray]:
    """The test input: the centre crop, or the multiview crops (ImageNet: four corners and the
    centre, then mirrored = 10; cifar-cropped: a 3×3 grid, no flips = 9). Mean subtracted.
    `indices` index `source` (default the dataset's test images)."""
    images = (dataset.test if source is None else source).data[:, indices]
    b, mean = cropping.border, centre_mean(dataset, cropping)
    if not multiview or b == 0:
        return [_crop(images, cropping.side, cropping.inner, b, b, False) - mean]
    if cropping.per_image:
        offsets = [(y, x, False) for y in (0, b, 2 * b) for x in (0, b, 2 * b)]
    else:
        corners = [(0, 0), (0, 2 * b), (b, b), (2 * b, 0), (2 * b, 2 * b)]
        offsets = [(y, x, False) for y, x in corners] + [(y, x, True) for y, x in corners]
    return [_crop(images, cropping.side, cropping.inner, y, x, flip) - mean for y, x, flip in offsets]
