"""Every kernel launch of a full-scale training step, checked without running the kernels.

The emulator tests run the kernels on small shapes; a GPU runs them at the release's: 224-pixel crops,
128 cases, fc layers of 4096. Grid sizes, the partial-sum buffers, the tap tables in dynamic shared memory
and the int32 scalars all grow with the shape, so a launch CUDA refuses (grid y or z over 65535, more than
48 KiB of dynamic shared memory, an int32 argument that overflows) would first show on the GPU, at a cost
of scarce device time. Here one step (forward with dropout, backward, update) of a net of each family of
the release runs through the CUDA backend at batch 128 with the launcher's kernel lookup replaced by a
check: `kernels.launch_dims` (CUDA's limits) as always, then the argument list against the kernel's
parsed signature (the emulator's packing: count, pointer dtypes, np.int32/np.float32 scalars), and no
array of 2**31 or more elements (the kernels index with int). Nothing is executed, so the values are
garbage and only the launches matter. Every eligible conv tiling is launched, as the GPU's autotuner
does, and the weight-gradient grids are checked both for an H100 (132 multiprocessors) and for the
largest grid any device could get (one partialSum run per block).
"""
from __future__ import annotations

import gc
from collections import Counter

import numpy as np
import pytest

from replay.backends import get_backend
from replay.backends.cuda import conv, dense, kernels
from replay.network import Network
from replay.plan import build_plan

# One experiment per family of the release (distinct layer types and input size), the biggest first.
FAMILIES = [
    "126-2012-full",                    # 224 px, href, the full 2012 widths
    "120",                              # 224 px, two towers, cnorm
    "96-16k",                           # randSparse convs
    "141",                              # rnorm, blur, nailbed
    "170-4gpu",                         # four GPUs, concat
    "cifar-conv-local-13pct-noisylr",   # local (unshared) layers
    "example-gc",                       # concat on 32 px
]
CASES = 128
H100_SMS = 132
EVERY_RUN_ITS_OWN_BLOCK = 1 << 30   # so many multiprocessors that _runs_per_block is 1: the largest grid
WEIGHT_RUNS_PER_BLOCK_ARG = 14      # conv_weight_acts*_kernel's runs_per_block argument (conv.py _weight_acts)


class DryLauncher:
    """Stands in for kernels.function: checks each call's arguments against the kernel's signature and
    records (kernel, grid, block, shared_mem, args) instead of running it."""

    def __init__(self):
        self.launches: list[tuple[str, tuple, tuple, int, tuple]] = []
        self._real = kernels.function

    def __call__(self, like, name: str):
        emulated = self._real(like, name)  # the compiled emulator module: its parsed signature

        def check(grid, block, args, shared_mem=0):
            emulated._pack(args)
            for value in args:
                if isinstance(value, np.ndarray) and value.size >= 2 ** 31:
                    raise ValueError(f"{name}: an argument of {value.size} elements (the kernels index with int)")
            self.launches.append((name, grid, block, shared_mem, tuple(args)))

        return check


@pytest.fixture
def dry(monkeypatch):
    launcher = DryLauncher()
    monkeypatch.setattr(kernels, "function", launcher)
    chosen = conv._choose

    def every_variant(op, like, key, rows, runners):
        for run in runners.values():  # what the autotuner times on a GPU
            run()
        return chosen(op, like, key, rows, runners)

    monkeypatch.setattr(conv, "_choose", every_variant)
    # the cost read back from a kernel that never ran is garbage, often NaN, which the cost layer refuses
    monkeypatch.setattr(dense, "_finite_or_raise", lambda name, values: None)
    return launcher


def full_scale_step(net: Network, plan) -> None:
    side = plan.input_size
    data = np.zeros((plan.input_channels * side * side, CASES), dtype=np.float32)
    labels = np.zeros((1, CASES), dtype=np.float32)
    with np.errstate(all="ignore"):  # the fc products multiply the garbage of kernels that never ran
        net.forward(data, labels, train=True, rng=np.random.default_rng(2))
        net.backward(labels)
        net.update(epoch=1, progress=0.0)


@pytest.mark.parametrize("experiment_id", FAMILIES)
def test_every_launch_of_a_full_scale_step_is_one_cuda_accepts(release, dry, monkeypatch, experiment_id):
    experiment = release.experiment(experiment_id)
    plan = build_plan(experiment)
    net = Network(plan, experiment, rng=np.random.default_rng(0), backend=get_backend("cuda"))
    grids = {}
    for sms in (H100_SMS, EVERY_RUN_ITS_OWN_BLOCK):
        monkeypatch.setattr(conv, "_multiprocessors", lambda like, sms=sms: sms)
        dry.launches.clear()
        full_scale_step(net, plan)
        grids[sms] = [(grid, args[WEIGHT_RUNS_PER_BLOCK_ARG]) for name, grid, _, _, args in dry.launches
                      if name in conv.VARIANTS["weights"].values()]
        assert dry.launches, experiment_id
    del net
    gc.collect()
    launched = Counter(name for name, *_ in dry.launches)
    for op, variants in conv.VARIANTS.items():  # an op that ran, ran in both tilings (checked at full size)
        if any(launched[kernel] for kernel in variants.values()):
            assert all(launched[kernel] for kernel in variants.values()), (op, launched)
    if any(layer.type == "conv" for layer in plan.layers):
        # the worst case really launched one partialSum run per block: the largest grid a device can get
        assert all(runs == 1 for _, runs in grids[EVERY_RUN_ITS_OWN_BLOCK])
        assert max(g[2] for g, _ in grids[EVERY_RUN_ITS_OWN_BLOCK]) >= max(g[2] for g, _ in grids[H100_SMS])


def test_the_dry_run_refuses_a_launch_over_cuda_s_limits(release, dry, monkeypatch):
    """The check above is live: with grid x capped just under #120's conv1 forward grid at 128 cases
    (3025 modules × 128 cases / 64 columns per block = 6050 blocks), the step is refused by name."""
    experiment = release.experiment("120")
    plan = build_plan(experiment)
    net = Network(plan, experiment, rng=np.random.default_rng(0), backend=get_backend("cuda"))
    monkeypatch.setattr(kernels, "MAX_GRID_DIMS", (6049, 65535, 65535))
    with pytest.raises(ValueError, match=r"conv_filter_acts\w*: grid \(6050, .*outside 1\.\.6049"):
        full_scale_step(net, plan)
