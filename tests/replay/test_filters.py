"""replay/filters.py: the first-layer filter picture, decoded with Pillow and checked pixel by
pixel against weights with known values (#120's two GPUs, a one-GPU CIFAR net, grey tiles)."""
from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image

from replay.filters import PANEL_GAP_PX, filters_png, first_conv_layers
from replay.plan import build_plan

RED, GREEN, BLUE, BLACK, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 0, 0), (255, 255, 255)
GREY = (128, 128, 128)  # the middle of a filter whose values run -1..1: rint(0.5·255) = 128


@pytest.fixture(scope="module")
def plan120(release):
    return build_plan(release.experiment("120"))


@pytest.fixture(scope="module")
def plan_cifar(release):
    return build_plan(release.experiment("cifar-18pct-noisylr"))


def decode(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.mode == "RGB"
    return np.asarray(image)


def zero_weights(plan) -> dict[str, np.ndarray]:
    out = {}
    for layer, index in first_conv_layers(plan):
        p = plan.param(layer.name, "weights", index)
        out[p.key] = np.zeros(p.shape, dtype=np.float32)
    return out


def set_tap(w: np.ndarray, f: int, u: int, v: int, rgb: tuple[float, float, float], size: int) -> None:
    """Put colour rgb (in -1..1) at pixel (u, v) of filter f: row (c·fs+u)·fs+v."""
    for c, value in enumerate(rgb):
        w[(c * size + u) * size + v, f] = value


def tile_origin(panel_top: int, f: int, tile: int, per_row: int = 16) -> tuple[int, int]:
    y, x = divmod(f, per_row)
    return panel_top + 1 + y * (tile + 1), 1 + x * (tile + 1)


def block(img: np.ndarray, top: int, left: int, h: int, w: int) -> set[tuple[int, ...]]:
    return {tuple(int(v) for v in px) for px in img[top:top + h, left:left + w].reshape(-1, 3)}


def test_120_two_panels_in_gpu_order_with_known_tiles(plan120):
    firsts = first_conv_layers(plan120)
    assert [(layer.name, layer.gpu, index) for layer, index in firsts] == [("conv1a", 0, 0), ("conv1b", 1, 0)]
    weights = zero_weights(plan120)
    assert set(weights) == {"conv1a.weights[0]", "conv1b.weights[0]"}
    assert weights["conv1a.weights[0]"].shape == (3 * 11 * 11, 32)
    fs, scale, tile = 11, 4, 44
    # conv1a filter 0: red at the top-left pixel, blue just right of it, green at the bottom
    # right; every other value 0, the middle of -1..1 (grey)
    a = weights["conv1a.weights[0]"]
    set_tap(a, 0, 0, 0, (1, -1, -1), fs)
    set_tap(a, 0, 0, 1, (-1, -1, 1), fs)
    set_tap(a, 0, 10, 10, (-1, 1, -1), fs)
    # conv1b filter 17 (second row, second column): red top-left only
    b = weights["conv1b.weights[0]"]
    set_tap(b, 17, 0, 0, (1, -1, -1), fs)
    set_tap(b, 17, 5, 5, (0.5, 0.5, 0.5), fs)

    img = decode(filters_png(weights, plan120))
    panel_h, panel_w = 2 * (tile + 1) + 1, 16 * (tile + 1) + 1  # 32 filters, 16 a row
    assert img.shape == (2 * panel_h + PANEL_GAP_PX, panel_w, 3) == (190, 721, 3)
    # the white gap separates exactly two panels
    white_rows = np.flatnonzero((img == 255).all(axis=(1, 2)))
    assert list(white_rows) == list(range(panel_h, panel_h + PANEL_GAP_PX))

    top, left = tile_origin(0, 0, tile)
    assert block(img, top, left, scale, scale) == {RED}
    assert block(img, top, left + scale, scale, scale) == {BLUE}  # v runs left to right
    assert block(img, top + 10 * scale, left + 10 * scale, scale, scale) == {GREEN}
    assert block(img, top + scale, left, scale, scale) == {GREY}  # (u=1, v=0): nothing set
    assert block(img, top - 1, left - 1, 1, tile + 2) == {BLACK}  # the 1-px line above the tile
    assert block(img, top, left + tile, tile, 1) == {BLACK}  # and right of it
    # an all-zero filter is constant: mid grey
    assert block(img, *tile_origin(0, 1, tile), tile, tile) == {GREY}

    top, left = tile_origin(panel_h + PANEL_GAP_PX, 17, tile)
    assert (top, left) == (190 - panel_h + 1 + tile + 1, 1 + tile + 1)
    assert block(img, top, left, scale, scale) == {RED}
    assert block(img, top + 5 * scale, left + 5 * scale, scale, scale) == {(191, 191, 191)}  # 0.75·255
    assert block(img, top, left + scale, scale, scale) == {GREY}


def test_per_filter_normalisation_ignores_scale_and_shift(plan120):
    rng = np.random.default_rng(3)
    weights = {k: rng.standard_normal(w.shape).astype(np.float32) for k, w in zero_weights(plan120).items()}
    stretched = dict(weights)
    a = weights["conv1a.weights[0]"].copy()
    a[:, 4] = 1000.0 * a[:, 4] + 7.0  # one filter rescaled and shifted: same picture
    stretched["conv1a.weights[0]"] = a
    assert filters_png(weights, plan120) == filters_png(stretched, plan120)
    # shownet's default (one min/max over the layer) sees the change
    assert filters_png(weights, plan120, normalise="layer") != filters_png(stretched, plan120, normalise="layer")


def test_layer_normalisation_is_one_min_max_per_layer(plan_cifar):
    weights = zero_weights(plan_cifar)
    w = weights["conv1.weights[0]"]
    w[:, 0] = np.linspace(-1.0, 1.0, w.shape[0])  # sets the layer's range to -1..1
    w[:, 1] = 0.5  # constant: per filter mid grey, per layer 0.75 of the range
    tile = 45
    by_layer = decode(filters_png(weights, plan_cifar, normalise="layer"))
    by_filter = decode(filters_png(weights, plan_cifar))
    origin = tile_origin(0, 1, tile)
    assert block(by_layer, *origin, tile, tile) == {(191, 191, 191)}
    assert block(by_filter, *origin, tile, tile) == {GREY}
    # filter 0's top-left pixel reads rows 0, 25, 50 of the ramp over 75 rows: 0, 25/74, 50/74
    top, left = tile_origin(0, 0, tile)
    ramp_rgb = (0, 86, 172)
    assert block(by_filter, top, left, 9, 9) == {ramp_rgb} == block(by_layer, top, left, 9, 9)
    # "standardize" (shownet --norm-filters): filter 0 standardised spans ±1.71, the constant
    # filters standardise to 0 (shownet would divide by zero), so filter 0 sets the layer range
    standard = decode(filters_png(weights, plan_cifar, normalise="standardize"))
    assert block(standard, top, left, 9, 9) == {ramp_rgb}
    assert block(standard, *origin, tile, tile) == {GREY}


def test_cifar_one_panel_of_5x5_filters(plan_cifar):
    firsts = first_conv_layers(plan_cifar)
    assert [(layer.name, layer.gpu) for layer, _ in firsts] == [("conv1", 0)]
    weights = zero_weights(plan_cifar)
    w = weights["conv1.weights[0]"]
    assert w.shape == (75, 32)
    set_tap(w, 31, 0, 0, (1, -1, -1), 5)
    set_tap(w, 31, 4, 0, (-1, -1, 1), 5)
    img = decode(filters_png(weights, plan_cifar))
    tile = 45  # 5 px × round(44 / 5) = 9
    assert img.shape == (2 * (tile + 1) + 1, 16 * (tile + 1) + 1, 3)
    assert not (img == 255).all(axis=(1, 2)).any()  # one panel: no gap
    top, left = tile_origin(0, 31, tile)  # the last tile, bottom right
    assert (top + tile + 1, left + tile + 1) == img.shape[:2]
    assert block(img, top, left, 9, 9) == {RED}
    assert block(img, top + 4 * 9, left, 9, 9) == {BLUE}  # u runs top to bottom
    # explicit options
    small = decode(filters_png(weights, plan_cifar, per_row=8, scale=1))
    assert small.shape == (4 * 6 + 1, 8 * 6 + 1, 3)
    assert tuple(small[*tile_origin(0, 31, 5, per_row=8)]) == RED


def with_first_layer(plan, name: str, **derived):
    layers = tuple(dataclasses.replace(layer, derived={**layer.derived, **derived}) if layer.name == name else layer
                   for layer in plan.layers)
    return dataclasses.replace(plan, layers=layers)


def test_one_channel_filters_are_grey_tiles(plan_cifar):
    plan = with_first_layer(plan_cifar, "conv1", channels=[1], filterChannels=[1])
    w = np.zeros((25, 32))
    w[0, 2] = 1.0  # filter 2: white top-left on black
    w[24, 3] = -1.0  # filter 3: black bottom-right on white
    img = decode(filters_png({"conv1.weights[0]": w}, plan))
    tile = 45
    assert img.shape == (2 * (tile + 1) + 1, 16 * (tile + 1) + 1, 3)
    assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()
    top, left = tile_origin(0, 2, tile)
    assert block(img, top, left, 9, 9) == {WHITE} and block(img, top + 9, left, 36, 45) == {BLACK}
    top, left = tile_origin(0, 3, tile)
    assert block(img, top + 36, left + 36, 9, 9) == {BLACK} and block(img, top, left, 36, 45) == {WHITE}


def test_two_channel_filters_sit_side_by_side_as_shownet_draws_them(plan_cifar):
    plan = with_first_layer(plan_cifar, "conv1", channels=[2], filterChannels=[2])
    w = np.zeros((50, 32))
    w[25, 9] = 1.0  # filter 9, channel 1, pixel (0, 0)
    img = decode(filters_png({"conv1.weights[0]": w}, plan))
    tile_w, tile_h = 2 * 45, 45  # ceil(16 / 2) = 8 filters a row
    assert img.shape == (4 * (tile_h + 1) + 1, 8 * (tile_w + 1) + 1, 3)
    top, left = 1 + 1 * (tile_h + 1), 1 + 1 * (tile_w + 1)  # filter 9: row 1, column 1
    assert block(img, top, left + 45, 9, 9) == {WHITE}  # channel 1's tile is the right half
    assert block(img, top, left, 9, 9) == {BLACK}


def test_deterministic(plan120, plan_cifar):
    for plan in (plan120, plan_cifar):
        rng = np.random.default_rng(0)
        weights = {k: rng.normal(0, 0.01, w.shape).astype(np.float32) for k, w in zero_weights(plan).items()}
        first = filters_png(weights, plan)
        again = {k: v.copy() for k, v in weights.items()}
        assert filters_png(again, plan) == first
        assert first.startswith(b"\x89PNG\r\n\x1a\n")
        # float64 copies of the same values draw the same picture; the inputs are not modified
        assert filters_png({k: v.astype(np.float64) for k, v in weights.items()}, plan) == first
        assert all(np.array_equal(weights[k], again[k]) for k in weights)


def test_no_first_conv_layer_names_the_experiment(plan120):
    plan = dataclasses.replace(plan120, layers=tuple(
        dataclasses.replace(layer, inputs=("blur0",)) if layer.name in ("conv1a", "conv1b") else layer
        for layer in plan120.layers))
    with pytest.raises(ValueError, match=r"'120'.*no conv layer reading a data layer"):
        filters_png(zero_weights(plan120), plan)


def test_bad_weights_are_refused(plan120):
    weights = zero_weights(plan120)
    with pytest.raises(ValueError, match=r"conv1b\.weights\[0\]"):
        filters_png({"conv1a.weights[0]": weights["conv1a.weights[0]"]}, plan120)
    with pytest.raises(ValueError, match=r"shape \(32, 363\), expected \(363, 32\)"):
        filters_png({**weights, "conv1a.weights[0]": weights["conv1a.weights[0]"].T}, plan120)
    with pytest.raises(ValueError, match="finite"):
        bad = weights["conv1b.weights[0]"].copy()
        bad[0, 0] = np.nan
        filters_png({**weights, "conv1b.weights[0]": bad}, plan120)
    with pytest.raises(ValueError, match="normalise"):
        filters_png(weights, plan120, normalise="global")


def oracle_panel(w: np.ndarray, size: int, how: str, scale: int, per_row: int = 16) -> np.ndarray:
    """The 3-channel panel rebuilt pixel by pixel, each rule written out on its own."""
    w = w.astype(np.float64)
    if how == "filter":
        norm = np.stack([(w[:, f] - w[:, f].min()) / (w[:, f].max() - w[:, f].min())
                         for f in range(w.shape[1])], axis=1)
    else:
        if how == "standardize":
            w = np.stack([(w[:, f] - w[:, f].mean()) / w[:, f].std() for f in range(w.shape[1])], axis=1)
        norm = (w - w.min()) / (w.max() - w.min())
    count, tile = w.shape[1], size * scale
    rows = -(-count // per_row)
    out = np.zeros((rows * (tile + 1) + 1, min(count, per_row) * (tile + 1) + 1, 3), dtype=np.uint8)
    for f in range(count):
        for c in range(3):
            for u in range(size):
                for v in range(size):
                    value = np.uint8(np.rint(norm[(c * size + u) * size + v, f] * 255))
                    top = 1 + (f // per_row) * (tile + 1) + u * scale
                    left = 1 + (f % per_row) * (tile + 1) + v * scale
                    out[top:top + scale, left:left + scale, c] = value
    return out


@pytest.mark.parametrize("how", ["filter", "layer", "standardize"])
def test_random_weights_match_a_pixel_by_pixel_oracle(plan_cifar, how):
    rng = np.random.default_rng(7)
    w = (rng.standard_normal((75, 32)) * rng.uniform(0.01, 2.0, 32)).astype(np.float32)
    img = decode(filters_png({"conv1.weights[0]": w}, plan_cifar, normalise=how, scale=2))
    assert np.array_equal(img, oracle_panel(w, 5, how, 2))
