"""Training speed on one GPU: our CUDA backend against PyTorch (cuDNN) running the same 2012 graph.

    python3 bench/replay_gpu.py [--net 120] [--batch 128] [--warmup 3] [--iters 10] [--json FILE]
                                [--archive PATH] [--no-cudnn-benchmark] [--no-check]

One training step = forward (train=True: dropout on) + backward + update, float32, every tensor on one GPU
(the plan's two logical GPUs share the device):
- ours: replay/network.py's Network with the backend get_backend("cuda") (kernels/*.cu through
  cupy.RawModule; fc products through CuPy's cuBLAS matmul, strict FP32 unless CUPY_TF32 is set), data and
  weights as CuPy arrays; Network.forward + backward + update(epoch=1, progress=0);
- PyTorch: replay/torch_graph.py's model of the same plan with the same initial weights (grouped convs,
  the 2012 LRN scale, 2012 dropout), logreg_loss(...).backward(), torch.optim.SGD(momentum 0.9, weight
  decay 0.0005 on weights; foreach) — once with strict FP32 (allow_tf32 off for matmul and cuDNN,
  float32_matmul_precision 'highest') and once with TF32 on, in the same process after warm-up.
Before timing, one test-mode forward of both on the same batch must give the same summed NLL (rel. 1e-3):
the two compute the same graph.

Timing: after --warmup steps, each of --iters steps between two marks that first synchronise the whole
device (cudaDeviceSynchronize: every stream — our network runs each logical GPU on its own
stream, replay/backends/cuda/devices.py, so the two towers may overlap on the one card — and torch's),
then read the host clock; the median is reported. Host-side stalls (our cost layer reads its three sums
back to the host each step) count, as they should. Per-op and per-layer times use CUDA events on the
stream the op runs on (cupy.cuda.Event / torch.cuda.Event).

Per layer (one extra profiled step each, after the timed ones): ours through a timing proxy around the
backend (bench/_gpu_common.TimedBackend: an event pair around every op call, labelled with the layer the
network is on; network.py is not changed); PyTorch's forward per layer by events around each layer of the
graph, its backward per layer from hooks on each layer's output gradient (the interval from the moment a
layer's output gradient is complete to the next such moment; autograd runs one stream in reverse order,
so this is that layer's backward, approximately).

TFLOP/s: from the plan's FLOPs (replay/plan.py: conv/local/fc forward FLOPs per image) × 3 for forward +
data gradient + weight gradient (the usual convention; the step computes no gradient of the data, so the
exact count, also printed, is a little lower), × batch / step time; fraction of the device's FP32 peak
= SM count × max SM clock × 128 FP32 lanes per SM (sm_86+/sm_90; 64 on sm_80) × 2, checked against the
data-sheet value for H100/H200. Pooling, normalisation, neurons and the update are not counted.
Memory: CuPy's pool size after our steps (the pool keeps the high-water mark of our allocations; freed
before we start) and torch.cuda.max_memory_allocated for PyTorch.
Progress goes to stderr; the report to stdout; --json FILE writes everything as JSON.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _gpu_common as common


@dataclass
class Env:
    """What differs between the GPU run and the CPU self-test (tests/cuda/test_bench_scripts.py)."""

    xp: object                 # cupy (or numpy in the self-test)
    backend: str               # "cuda" (or "numpy")
    ours_clock: object         # per op: events on the current stream (the layer's logical GPU's)
    torch: object
    torch_device: str          # "cuda" (or "cpu")
    torch_clock: object
    device: dict               # common.device_info
    step_clock: object = None  # whole steps, ours and PyTorch: every stream synchronised at each mark
    ours_memory: object = None   # (net) -> bytes, or None
    reset_ours_memory: object = None
    torch_memory: object = None
    reset_torch_memory: object = None


def gpu_env() -> Env:
    cupy, torch = common.require_gpu()
    pool = cupy.get_default_memory_pool()

    def ours_memory(net) -> int:
        # the default pool plus the pool of each logical GPU (replay/backends/cuda/devices.py LogicalGpus)
        # (total_bytes counts the current device only: cupy/cuda/memory.pyx MemoryPool.total_bytes)
        pools = [p for p in getattr(net.transfers, "pools", None) or [] if p is not None]
        total = 0
        for device in range(cupy.cuda.runtime.getDeviceCount()):
            with cupy.cuda.Device(device):
                total += pool.total_bytes() + sum(p.total_bytes() for p in pools)
        return total

    return Env(cupy, "cuda", common.CupyEventClock(cupy), torch, "cuda", common.TorchEventClock(torch),
               common.device_info(cupy), step_clock=common.SyncedClock(cupy.cuda.runtime.deviceSynchronize),
               ours_memory=ours_memory, reset_ours_memory=pool.free_all_blocks,
               torch_memory=torch.cuda.max_memory_allocated, reset_torch_memory=torch.cuda.reset_peak_memory_stats)


def set_precision(torch, tf32: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")


def _on_device(net, xp) -> None:
    import numpy as np

    """The network's parameters and optimizer state as arrays of xp where they are still NumPy arrays
    (Network places them on its logical GPUs itself on the CUDA backend; this only guards an older one)."""
    for attribute in ("weights", "momentum", "grad_avg", "grad2_avg"):
        arrays = getattr(net, attribute, None)
        if isinstance(arrays, dict) and xp is not np:
            for key, value in arrays.items():
                if isinstance(value, np.ndarray):
                    arrays[key] = xp.asarray(value)


def _torch_layer_profile(model, step, clock) -> dict[str, dict[str, float]]:
    """{layer: {"forward": ms, "backward": ms}} of one step of the torch graph (see the module docstring)."""
    marks: list[tuple[str, str, object, object]] = []   # forward: (layer, "forward", start, end)
    backward: list[tuple[str, object]] = []             # (layer whose output gradient is complete, mark)

    original = model._layer

    def timed(spec, inputs):
        name = spec["layer"].name
        start = clock.mark()
        y = original(spec, inputs)
        marks.append((name, "forward", start, clock.mark()))
        if getattr(y, "requires_grad", False):
            y.register_hook(lambda grad, name=name: backward.append((name, clock.mark())) or None)
        return y

    model._layer = timed
    try:
        end_backward = step(lambda: backward.append(("(loss)", clock.mark())))
    finally:
        del model._layer  # the class's method again
    clock.synchronize()
    out: dict[str, dict[str, float]] = {}
    for name, phase, a, b in marks:
        out.setdefault(name, {}).setdefault(phase, 0.0)
        out[name][phase] += clock.elapsed_ms(a, b)
    points = backward + [("(end)", end_backward)]
    for (name, a), (_, b) in itertools.pairwise(points):
        out.setdefault(name, {}).setdefault("backward", 0.0)
        out[name]["backward"] += clock.elapsed_ms(a, b)
    return out


def run(args, env: Env) -> dict:
    import numpy as np

    from replay.backends import get_backend
    from replay.network import Network
    from replay.torch_graph import build_torch_model, logreg_loss

    torch, xp = env.torch, env.xp
    step_clock = env.step_clock or common.SyncedClock()
    common.progress(f"loading #{args.net} ...")
    experiment, plan = common.load_plan(args.net, args.archive)
    cost = next(layer for layer in plan.layers if layer.type == "cost.logreg")
    classes = plan.layer(cost.inputs[1]).outputs
    coeff = float(experiment.params.get(cost.name).values.get("coeff", 1.0))
    side, batch = plan.input_size, args.batch

    rng = np.random.default_rng(1)
    data = rng.normal(0.0, 50.0, size=(plan.input_channels * side * side, batch)).astype(np.float32)
    labels = rng.integers(0, classes, size=(1, batch)).astype(np.float32)

    # ours
    if env.reset_ours_memory:
        env.reset_ours_memory()
    proxy = common.TimedBackend(get_backend(env.backend), env.ours_clock)
    common.progress("initialising the network ...")
    net = Network(plan, experiment, rng=np.random.default_rng(0), backend=proxy)
    host_weights = {k: common.to_numpy(v) for k, v in net.weights.items()}
    _on_device(net, xp)
    x, y_labels = xp.asarray(data), xp.asarray(labels)
    common.progress(f"labelled network methods: {', '.join(common.label_layers(net, proxy))}")

    # PyTorch, the same weights
    device = env.torch_device
    torch.manual_seed(0)
    model = build_torch_model(plan, experiment, host_weights, dtype=torch.float32, conns=net.conns).to(device)
    common.torch_specs_to(model, device)
    decayed, plain = [], []
    for layer in plan.layers:
        if layer.type in common.WEIGHT_LAYERS:
            module = getattr(model, layer.name)
            module.requires_grad_(layer.grad_consumer)
            if layer.grad_consumer:
                decayed += module.weights()
                plain.append(module.bias)
    opt = torch.optim.SGD([{"params": decayed, "weight_decay": 5e-4}, {"params": plain, "weight_decay": 0.0}],
                          lr=0.01, momentum=0.9, foreach=True)
    x_t = torch.from_numpy(np.ascontiguousarray(data.T.reshape(batch, plan.input_channels, side, side))).to(device)
    y_t = torch.from_numpy(labels.reshape(-1).astype(np.int64)).to(device)

    # the same graph: one test-mode forward of each on the same batch, same weights
    set_precision(torch, False)
    ours_nll = net.forward(x, y_labels, train=False, rng=np.random.default_rng(3)).values[cost.name][0]
    model.eval()
    with torch.no_grad():
        torch_nll = float(logreg_loss(model(x_t), y_t, 1.0))
    check = {"ours_nll": ours_nll, "torch_nll": torch_nll,
             "relative_difference": abs(ours_nll - torch_nll) / max(abs(torch_nll), 1e-30)}
    common.progress(f"same graph? test-mode NLL ours {ours_nll:.6g}, PyTorch {torch_nll:.6g}")
    if check["relative_difference"] > 1e-3 and not args.no_check:
        raise SystemExit(f"replay_gpu: ours and PyTorch disagree on the test-mode cost ({ours_nll} vs "
                         f"{torch_nll}); the comparison would not be of the same computation (--no-check)")

    step_rng = np.random.default_rng(2)

    def ours_step():
        net.forward(x, y_labels, train=True, rng=step_rng)
        net.backward(y_labels)
        net.update(epoch=1.0, progress=0.0, rng=step_rng)

    common.progress(f"ours: {args.warmup} warm-up + {args.iters} timed steps ...")
    ours = common.time_steps(ours_step, step_clock, warmup=args.warmup, iters=args.iters)
    ours["memory_bytes"] = env.ours_memory(net) if env.ours_memory else None
    # one profiled step: every op call between an event pair, labelled by layer
    proxy.reset()
    proxy.enabled = True
    begin = step_clock.mark()
    proxy.phase = "forward"
    net.forward(x, y_labels, train=True, rng=step_rng)
    proxy.phase = "backward"
    net.backward(y_labels)
    proxy.phase, proxy.layer = "update", "(update)"
    update_start = step_clock.mark()
    net.update(epoch=1.0, progress=0.0, rng=step_rng)
    end = step_clock.mark()
    proxy.enabled = False
    ours_ops = proxy.summary()
    ours["profiled_step_ms"] = step_clock.elapsed_ms(begin, end)
    ours["update_ms"] = step_clock.elapsed_ms(update_start, end)
    ours["ops"] = ours_ops

    model.train()

    def torch_step(before_backward=None):
        opt.zero_grad(set_to_none=True)
        loss = logreg_loss(model(x_t), y_t, coeff)
        if before_backward:
            before_backward()
        loss.backward()
        end_backward = env.torch_clock.mark() if before_backward else None
        opt.step()
        return end_backward

    torch.backends.cudnn.benchmark = not args.no_cudnn_benchmark
    results = {}
    for label, tf32 in (("torch_fp32", False), ("torch_tf32", True)):
        set_precision(torch, tf32)
        if env.reset_torch_memory:
            env.reset_torch_memory()
        common.progress(f"PyTorch {'TF32' if tf32 else 'strict FP32'}: {args.warmup} warm-up + {args.iters} "
                        "timed steps ...")
        results[label] = common.time_steps(torch_step, step_clock, warmup=args.warmup, iters=args.iters)
        results[label]["memory_bytes"] = env.torch_memory() if env.torch_memory else None
    set_precision(torch, False)
    torch_layers = _torch_layer_profile(model, torch_step, env.torch_clock)
    return report(args, env, plan, ours, results, torch_layers, check)


def report(args, env, plan, ours, results, torch_layers, check) -> dict:
    batch = args.batch
    flops = common.training_flops_per_image(plan)
    peak = env.device.get("fp32_peak_tflops")

    def rate(ms):
        return batch / (ms / 1e3)

    def tflops(ms, per_image):
        return per_image * batch / (ms / 1e3) / 1e12

    rows, summary = [], {}
    for label, r in (("ours (CUDA kernels)", ours), ("PyTorch strict FP32", results["torch_fp32"]),
                     ("PyTorch TF32", results["torch_tf32"])):
        t = tflops(r["median_ms"], flops["conventional"])
        mem = r.get("memory_bytes")
        rows.append([label, rate(r["median_ms"]), r["median_ms"], r["wall_ms_per_step"], t,
                     None if not peak else 100 * t / peak, None if mem is None else mem / 2**20])
        summary[label] = {"images_per_s": rate(r["median_ms"]), "tflops": t}
    device, ratios = env.device, {
        label: common.speed_ratio(ours["median_ms"], results[label]["median_ms"]) for label in results}
    lines = [(f"device: {device.get('name')} (sm_{str(device.get('compute_capability', '?')).replace('.', '')}, "
              f"{device.get('sm_count')} SMs); FP32 peak {common.format_number(peak)} TFLOP/s "
              f"({device.get('peak_rule', '')}; data sheet: "
              f"{common.format_number(device.get('datasheet_fp32_tflops'))})"),
             (f"#{args.net}, batch {batch}, forward + backward + update, float32; median of {args.iters} steps "
              f"after {args.warmup} warm-up; device synchronised at both ends of each step"),
             (f"FLOPs per image: forward conv/local/fc {flops['forward'] / 1e9:.3f} G, ×3 (fwd + data grad + "
              f"weight grad) = {flops['conventional'] / 1e9:.3f} G (exact ops of a step: "
              f"{flops['exact'] / 1e9:.3f} G); TFLOP/s below use ×3"),
             "",
             common.format_table(["", "img/s", "ms/step", "wall ms", "TFLOP/s", "% FP32 peak", "memory MiB"], rows),
             "",
             (f"speed ours / PyTorch strict FP32: {common.format_ratio(ratios['torch_fp32'])}"
              f"   ours / PyTorch TF32: {common.format_ratio(ratios['torch_tf32'])}   (> 1: ours faster)")]

    # per layer
    op_flops = common.op_flops_per_image(plan)
    ours_layers = common.per_layer(ours["ops"])
    conv_rows, layer_rows = [], []
    for row in ours["ops"]:
        f = op_flops.get((row["layer"], row["op"]))
        if f and row["ms"] > 0:
            t = tflops(row["ms"], f)
            conv_rows.append([row["layer"], row["op"], row["ms"], t, None if not peak else 100 * t / peak])
    names = [layer.name for layer in plan.layers] + ["(loss)", "(update)", "?"]
    for name in names:
        o, t = ours_layers.get(name, {}), torch_layers.get(name, {})
        if not o and not t:
            continue
        o_total = sum(o.values()) or None
        t_total = (t.get("forward", 0.0) + t.get("backward", 0.0)) or None
        kind = plan.layer(name).type if name in {layer.name for layer in plan.layers} else ""
        layer_rows.append([name, kind, o.get("forward"), o.get("backward"), o.get("update"), t.get("forward"),
                           t.get("backward"), common.format_ratio(common.speed_ratio(o_total, t_total))])
    attributed = sum(r["ms"] for r in ours["ops"])
    lines += ["", ("per layer, ms of one profiled step (ours: op calls only; PyTorch strict FP32: forward per "
                   "layer, backward between output-gradient hooks, approximate):"),
              common.format_table(["layer", "type", "ours fwd", "ours bwd", "ours upd", "torch fwd", "torch bwd",
                                   "ours/torch"], layer_rows, align="llrrrrrr"),
              (f"ours: profiled step {ours['profiled_step_ms']:.2f} ms, in op calls {attributed:.2f} ms, "
               f"update {ours['update_ms']:.2f} ms, the rest (network glue: sums of gradients, copies between "
               "logical GPUs, conversions) outside any op"),
              "", "ours, conv/fc ops of the profiled step (FLOPs from the plan):",
              common.format_table(["layer", "op", "ms", "TFLOP/s", "% FP32 peak"], conv_rows, align="llrrr")]
    text = "\n".join(lines)
    print(text)
    out = {"net": args.net, "batch": batch, "iters": args.iters, "warmup": args.warmup, "device": env.device,
           "flops_per_image": flops, "check": check, "summary": summary,
           "ours": {k: v for k, v in ours.items() if k != "ops"}, "ours_ops": ours["ops"],
           "torch": results, "torch_layers": torch_layers,
           "ratios": {"ours_over_torch_fp32": common.speed_ratio(ours["median_ms"], results["torch_fp32"]["median_ms"]),
                      "ours_over_torch_tf32": common.speed_ratio(ours["median_ms"], results["torch_tf32"]["median_ms"])},
           "conv_ops": [dict(zip(("layer", "op", "ms", "tflops", "percent_of_peak"), r)) for r in conv_rows]}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str), encoding="utf-8")
        common.progress(f"wrote {args.json}")
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Needs a CUDA GPU with CuPy and a CUDA build of torch (README: Speed).")
    p.add_argument("--net", default="120", help="experiment id (default 120: 224×224, two towers)")
    p.add_argument("--batch", type=int, default=128, help="minibatch (default 128)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first, per variant (default 3)")
    p.add_argument("--iters", type=int, default=10, help="timed steps, per variant (default 10; the median is reported)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--archive", default=None, help="the release (default: as the CLI finds it)")
    p.add_argument("--no-cudnn-benchmark", action="store_true",
                   help="leave torch.backends.cudnn.benchmark off (default: on, cuDNN picks its fastest algorithms)")
    p.add_argument("--no-check", action="store_true", help="time even if ours and PyTorch disagree on the cost")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    env = gpu_env()  # exits with a clear message where there is no GPU / CuPy
    run(args, env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
