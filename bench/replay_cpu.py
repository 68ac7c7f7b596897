"""Training speed on the CPU: the NumPy reference backend against PyTorch running the same 2012 graph.

    python3 bench/replay_cpu.py [--batch 128] [--cifar-batch 128] [--iters 2] [--nets 120,cifar-18pct-noisylr]
                                [--threads N] [--archive PATH]

For each net, images per second of one training step, forward + backward, float32:
- numpy: replay/network.py, Network.forward(train=True) + Network.backward (weight gradients of every
  gradient-consuming layer, as the replay computes them);
- torch: replay/torch_graph.py's model of the same plan and the same weights, model.train(),
  logreg_loss(probs).backward(); parameters of layers that are not gradient consumers in the plan have
  requires_grad=False, so both compute the same set of gradients (no gradient of the data in either).
One warm-up step, then --iters timed steps (the median is reported). Aim (information only): numpy
at least 0.5× torch's images per second.

Threads: torch.set_num_threads(N) with N = the thread count of NumPy's BLAS (threadpoolctl when installed,
else os.cpu_count()); --threads overrides both (BLAS through threadpoolctl).

Memory: each (net, backend) runs in its own subprocess, and the table gives that process's peak resident
set (resource.getrusage(RUSAGE_SELF).ru_maxrss) after set-up (archive, plan, weights, one batch of data)
and after the timed steps; the difference is what training the batch added at its peak.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

NETS = {"120": "#120 (224×224, two towers)", "cifar-18pct-noisylr": "layers-18pct (CIFAR 32×32)"}


def blas_threads() -> tuple[int, str]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return os.cpu_count() or 1, "os.cpu_count() (threadpoolctl not installed)"
    import numpy  # noqa: F401  (load its BLAS so that threadpoolctl sees it)

    blas = [info for info in threadpool_info() if info["user_api"] == "blas"]
    if not blas:
        return os.cpu_count() or 1, "os.cpu_count() (no BLAS found by threadpoolctl)"
    return blas[0]["num_threads"], f"{blas[0]['internal_api']} via threadpoolctl"


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def worker(args) -> None:
    import numpy as np

    if args.threads:
        try:
            from threadpoolctl import threadpool_limits
            threadpool_limits(args.threads, user_api="blas")
        except ImportError:
            pass
    from archive import load_archive
    from archive.locate import resolve_archive_path
    from replay.network import Network
    from replay.plan import build_plan

    archive = args.archive
    beside = Path(__file__).resolve().parent.parent.parent / "shared" / "AlexNet-Source-Code"
    if archive is None and not os.environ.get("ALEXNET_ARCHIVE") and beside.is_dir():
        archive = str(beside)  # where the tests find it (tests/conftest.py)
    experiment = load_archive(resolve_archive_path(archive)).experiment(args.net)
    plan = build_plan(experiment)
    net = Network(plan, experiment, rng=np.random.default_rng(0), dtype=np.float32)
    rng = np.random.default_rng(1)
    side = experiment.input.size
    cost = next(layer for layer in plan.layers if layer.type == "cost.logreg")
    classes = plan.layer(cost.inputs[1]).outputs
    data = rng.normal(0.0, 50.0, size=(3 * side * side, args.batch)).astype(np.float32)
    labels = rng.integers(0, classes, size=(1, args.batch)).astype(np.float32)

    if args.backend == "numpy":
        step_rng = np.random.default_rng(2)

        def step():
            net.forward(data, labels, train=True, rng=step_rng)
            net.backward(labels)
    else:
        import torch

        from replay.layout import to_nchw
        from replay.torch_graph import build_torch_model, logreg_loss

        torch.set_num_threads(args.threads)
        torch.manual_seed(0)
        model = build_torch_model(plan, experiment, net.weights, dtype=torch.float32, conns=net.conns)
        model.train()
        for layer in plan.layers:
            if layer.type in ("conv", "local", "fc") and not layer.grad_consumer:
                getattr(model, layer.name).requires_grad_(False)
        del net  # the torch model holds its own copy of the weights
        x = torch.from_numpy(to_nchw(data, 3))
        y = torch.from_numpy(labels.reshape(-1).astype(np.int64))
        coeff = float(experiment.params.get(cost.name).values.get("coeff", 1.0))

        def step():
            model.zero_grad(set_to_none=True)
            logreg_loss(model(x), y, coeff).backward()

    setup = peak_mib()
    step()  # warm-up
    times = []
    for _ in range(args.iters):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    seconds = statistics.median(times)
    print(json.dumps({"seconds": seconds, "images_per_s": args.batch / seconds, "setup_mib": setup,
                      "peak_mib": peak_mib(), "times": times}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128, help="minibatch of #120 (default 128)")
    parser.add_argument("--cifar-batch", type=int, default=128, help="minibatch of the CIFAR net (default 128)")
    parser.add_argument("--iters", type=int, default=2, help="timed steps after one warm-up (default 2)")
    parser.add_argument("--nets", default=",".join(NETS), help="experiments, comma-separated")
    parser.add_argument("--threads", type=int, default=0, help="threads for both (default: NumPy's BLAS count)")
    parser.add_argument("--archive", default=None, help="the release (default: as the CLI finds it, else ../shared/AlexNet-Source-Code)")
    parser.add_argument("--worker", nargs=2, metavar=("NET", "BACKEND"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        args.net, args.backend = args.worker
        worker(args)
        return 0

    threads, how = (args.threads, "--threads") if args.threads else blas_threads()
    print(f"threads: {threads} for NumPy's BLAS and torch.set_num_threads ({how}); float32; "
          f"median of {args.iters} step(s) after 1 warm-up; memory = peak RSS of a subprocess per row")
    header = f"{'net':<30} {'batch':>5} {'backend':<7} {'img/s':>8} {'s/step':>8} {'RSS set-up':>11} {'RSS peak':>10}"
    print(header)
    print("-" * len(header))
    for net in args.nets.split(","):
        batch = args.batch if net == "120" else args.cifar_batch
        rates = {}
        for backend in ("numpy", "torch"):
            command = [sys.executable, __file__, "--worker", net, backend, "--batch", str(batch),
                       "--iters", str(args.iters), "--threads", str(threads)]
            if args.archive:
                command += ["--archive", args.archive]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode:
                print(f"{net} {backend}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
                return 1
            r = json.loads(done.stdout.strip().splitlines()[-1])
            rates[backend] = r["images_per_s"]
            print(f"{NETS.get(net, net):<30} {batch:>5} {backend:<7} {r['images_per_s']:>8.1f} "
                  f"{r['seconds']:>8.2f} {r['setup_mib']:>8.0f} MiB {r['peak_mib']:>6.0f} MiB", flush=True)
        print(f"{'':<30} {'':>5} {'numpy/torch':<11} {rates['numpy'] / rates['torch']:>4.2f}×", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
