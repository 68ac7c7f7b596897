"""bench/replay_gpu.py and bench/cuda_kernels.py on the CPU: they start without CuPy (--help), stop with a clear
message where there is no GPU, and their pure parts are right: the FLOP accounting from the plan, the FP32
peak formula, the table and ratio formatting, the timing proxy around a backend. Their whole pipelines run
here with stand-ins for the GPU (the NumPy backend for ours, torch on the CPU, a perf_counter clock) on a
small CIFAR net: every correctness gate must pass and every PyTorch equivalent must agree with ours."""
from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from replay.backend import OPERATIONS
from replay.backends import get_backend
from replay.plan import build_plan

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import _gpu_common as common
import cuda_kernels
import replay_gpu

SCRIPTS = ["replay_gpu.py", "cuda_kernels.py"]
SMALL_NET = "cifar-18pct-noisylr"


def _gpu_available() -> bool:
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except (ImportError, RuntimeError):  # no cupy; cupy's CUDARuntimeError without a driver
        return False


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_runs_without_cupy(script):
    done = subprocess.run([sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    for option in ("--batch", "--iters", "--warmup", "--net", "--json"):
        assert option in done.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_without_a_gpu_it_exits_with_a_clear_message(script):
    if _gpu_available():
        pytest.skip("a GPU is here")
    done = subprocess.run([sys.executable, str(BENCH / script), "--iters", "1"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode != 0
    assert "needs a CUDA GPU with CuPy; see README" in done.stderr
    assert "Traceback" not in done.stderr


def test_flops_of_120_are_the_sum_of_its_conv_and_fc_layers(release):
    plan = build_plan(release.experiment("120"))
    weight = [layer for layer in plan.layers if layer.type in ("conv", "local", "fc")]
    assert {layer.type for layer in weight} == {"conv", "fc"}
    forward = sum(layer.flops for layer in weight)
    assert common.weight_flops_per_image(plan) == forward == plan.weight_flops_per_image()
    # conv1a by hand: 32 filters × 55² modules × 3·11² weights × 2
    assert plan.layer("conv1a").flops == 2 * 32 * 55 * 55 * 363
    flops = common.training_flops_per_image(plan)
    assert flops["conventional"] == 3 * forward
    # the exact count leaves out the data gradients nobody takes: conv1a/b's (their input is the data) and
    # conv2a/b's of input 0 (nails0, a nailbed of the data, consumes no gradient)
    conv2_input0 = 2 * 128 * 27 * 27 * (3 * 5 * 5)
    assert flops["exact"] == 3 * forward - 2 * plan.layer("conv1a").flops - 2 * conv2_input0
    ops = common.op_flops_per_image(plan)
    assert ("conv1a", "conv_backward_data") not in ops
    assert ops[("conv2a", "conv_backward_data")] == 2 * 128 * 27 * 27 * 800  # input 1 only (input 0 is nails0)
    assert ops[("fc1000", "fc_forward")] == plan.layer("fc1000").flops == 2 * 1000 * 4096


def test_fp32_peak_formula():
    # H100 SXM: 132 SMs at 1.98 GHz, 128 lanes -> 66.9 TFLOP/s (NVIDIA's data sheet)
    assert common.fp32_peak_flops(132, 1_980_000, 9, 0) / 1e12 == pytest.approx(66.9, rel=2e-3)
    # H100 PCIe: 114 SMs at 1.755 GHz -> 51.2
    assert common.fp32_peak_flops(114, 1_755_000, 9, 0) / 1e12 == pytest.approx(51.2, rel=2e-3)
    # A100 (sm_80: 64 FP32 lanes per SM): 108 SMs at 1.41 GHz -> 19.5
    assert common.fp32_peak_flops(108, 1_410_000, 8, 0) / 1e12 == pytest.approx(19.5, rel=2e-3)
    assert common.known_peak_tflops("NVIDIA H100 80GB HBM3 SXM") == 66.9
    assert common.known_peak_tflops("NVIDIA H100 PCIe") == 51.2
    assert common.known_peak_tflops("NVIDIA H200") == 66.9
    assert common.known_peak_tflops("Some GPU") is None


def test_ratios_and_tables():
    assert common.speed_ratio(10.0, 20.0) == 2.0  # ours twice as fast
    assert common.speed_ratio(None, 1.0) is None and common.speed_ratio(1.0, 0) is None
    assert common.format_ratio(2.0) == "2.00×" and common.format_ratio(None) == "—"
    table = common.format_table(["layer", "ms", "speed"], [["conv1a", 1.5, "2.00×"], ["fc1000", None, 1234]])
    lines = table.splitlines()
    assert lines[0].split() == ["layer", "ms", "speed"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split() == ["conv1a", "1.50", "2.00×"]
    assert lines[3].split() == ["fc1000", "—", "1,234"]
    assert len({len(line) for line in lines[:2]}) == 1  # the rule is as wide as the header


def test_timing_proxy_wraps_every_operation_and_forwards_calls():
    numpy_backend = get_backend("numpy")
    proxy = common.TimedBackend(numpy_backend, common.CpuClock())
    assert set(OPERATIONS) <= set(proxy.wrapped)
    for op in OPERATIONS:
        assert getattr(proxy, op).__wrapped__ is getattr(numpy_backend, op)
    x = np.array([[-1.0, 2.0], [3.0, -4.0]], dtype=np.float32)
    assert proxy.name == "numpy"
    np.testing.assert_array_equal(proxy.neuron_forward(x, "relu", ()), np.maximum(x, 0))
    assert proxy.records == []  # off by default: nothing recorded
    proxy.enabled, proxy.layer, proxy.phase = True, "conv1", "forward"
    y = proxy.softmax_forward(x)
    np.testing.assert_allclose(y, numpy_backend.softmax_forward(x))
    proxy.neuron_forward(x, "relu", ())
    proxy.neuron_forward(x, "relu", ())
    rows = {row["op"]: row for row in proxy.summary()}
    assert rows["neuron_forward"]["calls"] == 2 and rows["softmax_forward"]["calls"] == 1
    assert all(row["layer"] == "conv1" and row["phase"] == "forward" and row["ms"] >= 0 for row in rows.values())
    assert common.per_layer(proxy.summary()).keys() == {"conv1"}


def test_time_calls_counts_calls():
    calls = []
    times = common.time_calls(lambda: calls.append(1), common.CpuClock(), warmup=2, iters=3, rounds=4)
    assert len(calls) == 2 + 3 * 4 and len(times) == 4 and all(t >= 0 for t in times)


def _cpu_backend():
    """The NumPy backend with an in-place sgd_update, standing in for the CUDA backend."""
    from replay.update import sgd_update

    def sgd(w, v, grad, **rule):
        w[...], v[...] = sgd_update(w, v, grad, **rule)

    return types.SimpleNamespace(**vars(get_backend("numpy")), sgd_update=sgd)


def test_the_kernel_benchmark_pipeline_on_the_cpu(tmp_path, archive_root):
    torch = pytest.importorskip("torch")
    args = cuda_kernels.parser().parse_args(
        ["--net", SMALL_NET, "--batch", "2", "--iters", "1", "--rounds", "1", "--warmup", "0", "--check-cases", "2",
         "--archive", str(archive_root), "--json", str(tmp_path / "k.json")])
    rc = cuda_kernels.run(args, backend=_cpu_backend(), to_device=np.asarray, ours_clock=common.CpuClock(),
                          torch=torch, torch_device="cpu", torch_clock=common.CpuClock(),
                          device={"name": "cpu", "fp32_peak_tflops": 1.0})
    assert rc == 0
    import json
    cases = json.loads((tmp_path / "k.json").read_text())["cases"]
    ops = {c["op"] for c in cases}
    assert {"conv_forward", "conv_backward_data", "conv_backward_weights", "pool_forward", "pool_backward",
            "rnorm_forward", "neuron_forward", "fc_forward", "softmax_forward", "softmax_logreg_backward",
            "logreg_cost", "sgd_update"} <= ops
    assert all(c["check_ok"] for c in cases)
    compared = [c for c in cases if c.get("torch_vs_ours_error") is not None]
    assert len(compared) >= 20
    assert all(c["torch_vs_ours_error"] < 1e-4 for c in compared), [c["name"] for c in compared]
    # every conv GEMM is also timed with each variant forced, beside the autotuned choice
    conv_cases = [c for c in cases if c["op"] in cuda_kernels.CONV_VARIANT_OPS]
    assert conv_cases and all(set(c["variant_ms"]) == {"tile64", "tile128"} for c in conv_cases)
    assert os.environ.get("ALEXNET_CONV_VARIANT") is None  # restored after the forced runs


def test_the_gate_catches_a_wrong_kernel(archive_root):
    experiment, plan = common.load_plan(SMALL_NET, str(archive_root))
    cases = cuda_kernels.build_cases(plan, experiment, 2)
    conv = next(c for c in cases if c.op == "conv_forward")
    good = cuda_kernels.gate(conv, get_backend("numpy"), np.asarray, 2)
    assert good <= conv.rtol
    broken = types.SimpleNamespace(conv_forward=lambda x, w, **kw: get_backend("numpy").conv_forward(x, w, **kw) * 1.01)
    assert cuda_kernels.gate(conv, broken, np.asarray, 2) > conv.rtol


def test_the_training_benchmark_pipeline_on_the_cpu(tmp_path, archive_root):
    torch = pytest.importorskip("torch")
    env = replay_gpu.Env(np, "numpy", common.CpuClock(), torch, "cpu", common.CpuClock(),
                         {"name": "cpu", "fp32_peak_tflops": 1.0})
    args = replay_gpu.parser().parse_args(["--net", SMALL_NET, "--batch", "2", "--iters", "1", "--warmup", "0",
                                           "--archive", str(archive_root), "--json", str(tmp_path / "r.json")])
    out = replay_gpu.run(args, env)
    assert out["check"]["relative_difference"] < 1e-4  # the same graph
    assert set(out["ratios"]) == {"ours_over_torch_fp32", "ours_over_torch_tf32"}
    assert all(v > 0 for v in out["ratios"].values())
    layers = {row["layer"] for row in out["ours_ops"]}
    plan = build_plan(__import__("archive").load_archive(archive_root).experiment(SMALL_NET))
    assert {layer.name for layer in plan.layers if layer.type != "data"} <= layers  # every op labelled
    assert {"forward", "backward"} <= {row["phase"] for row in out["ours_ops"]}
    assert any(row["op"] == "conv_forward" for row in out["conv_ops"])
    assert {"conv1", "fc10"} <= set(out["torch_layers"])
    assert (tmp_path / "r.json").is_file()
