#!/usr/bin/env bash
# Verifies the CUDA backend on a GPU machine in a few cheap calls (issue 6). README: "Verifying the GPU path".
#
#   bash bench/gpu_verify.sh prepare            here, on the CPU machine: carry the release, print the device calls
#   bash bench/gpu_verify.sh PHASE[,PHASE] OUTDIR   on the GPU machine (or here, as a rehearsal)
#
# Phases (each ends inside its share of one device command; the device gives a session 15 minutes in all):
#   smoke     machine, versions, imports, the carried release, the CLI's replay options, every kernel compiled
#             and loaded through cupy.RawModule (or bench/cuda_kernels.py --smoke / bench/cupy_smoke.py if there)
#   tests     pytest tests/cuda -m gpu (junit gpu-tests.xml; with -n 4 where pytest-xdist is there)
#   sanitize  one training step of #120 at small scale, plain and then under compute-sanitizer's memcheck,
#             racecheck, synccheck and initcheck, in that order (--error-exitcode: a finding fails the phase)
#   bench     bench/replay_gpu.py --json replay.json, then bench/cuda_kernels.py --json kernels.json
#   emulated  the rest of tests/cuda (emulator, NVRTC, engine; CI runs these too, so only when time is left)
#   all       smoke,tests,sanitize,bench (more than one 10-minute command's worth: only for a long limit)
#
# Why it is written this way: the device machine has no network and the wrong torch for our pin, so nothing is
# pip-installed there; the CLI runs as `python3 -m webapp.cli` from the checkout. The release is not in the
# project (never committed): `prepare` copies it into .carry/ (ignored through .git/info/exclude and .gitignore),
# the call names .carry in `carry`, and this script points ALEXNET_ARCHIVE at it. OUTDIR gets at most 8 files
# (the device returns 8): PHASE.log for each phase run, gpu-tests.xml, cuda-tests.xml, kernels.json, replay.json.
# The order inside each phase is the issue's "done when" first (pytest -m gpu, memcheck and racecheck,
# replay_gpu.py), so a budget that runs out cuts the extras.
#
# Environment: GPU_VERIFY_REQUIRE_GPU=1 makes a missing GPU (or compute-sanitizer) a failure instead of a skip
# (the device calls set it); GPU_VERIFY_BUDGET_S (default 570) is the wall-clock budget of one invocation, after
# which steps are cut short and reported, so the summary is written before the device command's limit;
# GPU_VERIFY_NET (default 120) is the net the sanitizer replays; PYTHON (default python3); GPU_VERIFY_HAVE_GPU=1|0
# overrides the GPU detection (to rehearse the GPU steps' plumbing on a CPU machine); GPU_VERIFY_SANITIZERS
# (default "memcheck:100 racecheck:150 synccheck:60 initcheck:60") the compute-sanitizer tools and their seconds.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
NET=${GPU_VERIFY_NET:-120}
BUDGET=${GPU_VERIFY_BUDGET_S:-570}
REQUIRE_GPU=${GPU_VERIFY_REQUIRE_GPU:-0}
CARRIED="$REPO/.carry/AlexNet-Source-Code"
MAX_LOG_BYTES=$((15 * 1024 * 1024))  # the device returns files of up to 16 MiB
START=$SECONDS

usage() {
    sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
}

# ---- prepare (on the CPU machine) ---------------------------------------------------------------------------

prepare() {
    cd "$REPO" || exit 1
    local source=${ALEXNET_ARCHIVE:-$REPO/../shared/AlexNet-Source-Code}
    if [ ! -d "$source/layers" ]; then
        echo "prepare: no release at $source (set ALEXNET_ARCHIVE to a checkout of AlexNet-Source-Code)" >&2
        exit 1
    fi
    local exclude
    exclude=$(git rev-parse --path-format=absolute --git-path info/exclude) || exit 1
    mkdir -p "$(dirname "$exclude")"
    grep -qxF '/.carry/' "$exclude" 2>/dev/null || echo '/.carry/' >> "$exclude"
    if [ -n "$(git ls-files -- .carry)" ]; then
        echo "prepare: .carry/ has tracked files; refusing to put the release there" >&2
        exit 1
    fi
    mkdir -p .carry
    if ! git check-ignore -q .carry/AlexNet-Source-Code; then
        echo "prepare: .carry/ is not ignored by git; refusing to copy the release there" >&2
        exit 1
    fi
    rm -rf .carry/AlexNet-Source-Code
    # the release's files only: no .git of a clone (the carry is limited to 64 MiB with the checkout)
    mkdir -p .carry/AlexNet-Source-Code
    tar -C "$source" --exclude=./.git -cf - . | tar -C .carry/AlexNet-Source-Code -xf - \
        || { echo "prepare: copying $source failed" >&2; exit 1; }
    echo "prepare: copied $(find .carry/AlexNet-Source-Code -type f | wc -l) files ($(du -sh .carry | cut -f1)) of" \
         "$source into .carry/AlexNet-Source-Code (ignored: $exclude)"
    echo "prepare: the working tree that travels: $(git ls-files -co --exclude-standard -z | du -ch --files0-from=- 2>/dev/null | tail -1 | cut -f1) + .carry"
    cat <<'EOF'

Device time: 15 minutes a session in all, each machine start (1-2 min) included; no machine starts with
under 4 minutes left, and a warm one goes back after 30 s idle. So two calls (the tool `run`; each names
.carry in carry), then give_back. Read each PHASE.log's last line: "PHASE: PASS|FAIL (n s)".
 1. kernels load, pytest -m gpu, the #120 bench against cuDNN FP32/TF32 (~5 min):
    command: GPU_VERIFY_REQUIRE_GPU=1 GPU_VERIFY_BUDGET_S=320 bash bench/gpu_verify.sh smoke,tests,bench "$OUT"
    carry: [".carry"]   timeout_s: 350
    back: smoke.log, tests.log, bench.log, gpu-tests.xml, replay.json, kernels.json
 2. compute-sanitizer on one #120 step: memcheck, racecheck, then synccheck and initcheck as time allows (~4 min):
    command: GPU_VERIFY_REQUIRE_GPU=1 GPU_VERIFY_BUDGET_S=240 bash bench/gpu_verify.sh sanitize "$OUT"
    carry: [".carry"]   timeout_s: 270
    back: sanitize.log
    (if call 1 failed and a fix is ready, put the failed phase before sanitize: "tests,sanitize")
EOF
}

# ---- helpers (inside a phase) -------------------------------------------------------------------------------

FAILS=()
NOTES=()

remaining() { echo $((BUDGET - (SECONDS - START))); }

# step NAME SECONDS CMD...: run CMD under a time limit (its share, cut to what is left of the budget);
# record a failure (nonzero exit) or a time-out. Returns CMD's status (124 on a time-out).
step() {
    local name=$1 limit=$2
    shift 2
    local left
    left=$(( $(remaining) - 15 ))
    if [ "$left" -lt 5 ]; then
        echo "-- $name: NOT RUN (the ${BUDGET} s budget is spent)"
        FAILS+=("$name: not run, budget spent")
        return 125
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo
    local shown="$*"
    [ ${#shown} -gt 400 ] && shown="${shown:0:400}..."
    echo "== $name (limit ${limit} s): $shown"
    local t0=$SECONDS rc
    timeout --kill-after=10 "$limit" "$@"
    rc=$?
    if [ "$rc" -eq 0 ]; then
        echo "-- $name: ok ($((SECONDS - t0)) s)"
    elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "-- $name: TIMEOUT after $((SECONDS - t0)) s (cut at ${limit} s; inconclusive)"
        FAILS+=("$name: timed out after ${limit} s")
        rc=124
    else
        echo "-- $name: FAILED with exit status $rc ($((SECONDS - t0)) s)"
        FAILS+=("$name: exit status $rc")
    fi
    return "$rc"
}

# a GPU-only step where there is no GPU: a failure on the device (REQUIRE_GPU), a note elsewhere
no_gpu() {
    if [ "$REQUIRE_GPU" = 1 ]; then
        echo "-- $1: FAILED: no GPU visible to CuPy, and GPU_VERIFY_REQUIRE_GPU=1"
        FAILS+=("$1: no GPU")
    else
        echo "-- $1: SKIPPED (no GPU)"
        NOTES+=("no GPU: $1 skipped")
    fi
}

summary() {  # the phase's last lines; its exit status
    local phase=$1 n
    for n in "${NOTES[@]+"${NOTES[@]}"}"; do echo "   note: $n"; done
    for n in "${FAILS[@]+"${FAILS[@]}"}"; do echo "   failed: $n"; done
    if [ ${#FAILS[@]} -eq 0 ]; then
        echo "$phase: PASS ($((SECONDS - PHASE_START)) s)"
        return 0
    fi
    echo "$phase: FAIL ($((SECONDS - PHASE_START)) s)"
    return 1
}

junit_counts() {  # junit_counts FILE -> "tests failures errors skipped one-device-skips" summed over the suites
    "$PY" - "$1" <<'EOF'
import sys
import xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print("0 0 0 0 0"); sys.exit()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
counts = [sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")]
# skips a one-GPU machine must make (tests/cuda/test_cupy_gpu.py: "needs two CUDA devices")
one_device = sum("needs two CUDA devices" in (skip.get("message") or "") for skip in root.iter("skipped"))
print(*counts, one_device)
EOF
}

# ---- the phases ---------------------------------------------------------------------------------------------

phase_smoke() {
    echo "== machine"
    echo "host $(uname -srm); $(nproc) cores; $(free -g 2>/dev/null | awk '/^Mem:/ {print $2 " GiB memory"}'); repo $REPO"
    echo "git: $(git -C "$REPO" log -1 --format='%h %s' 2>/dev/null || echo 'no git metadata')"
    if command -v nvidia-smi >/dev/null; then
        step nvidia-smi 30 nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap,clocks.max.sm --format=csv
    else
        echo "-- nvidia-smi: not found"
    fi
    echo
    echo "== tools"
    local tool
    for tool in nvcc g++ compute-sanitizer ncu; do
        if command -v "$tool" >/dev/null; then
            echo "$tool: $("$tool" --version 2>&1 | grep -iE 'release|version|g\+\+' | head -1)"
        else
            echo "$tool: not on PATH"
        fi
    done
    step versions-and-imports 120 "$PY" - <<'EOF'
import importlib, os, platform, sys
print("python", platform.python_version(), sys.executable)
for name in ("numpy", "cupy", "torch", "pytest", "xdist", "hypothesis", "jinja2", "markdown_it", "PIL", "sklearn",
             "fastapi", "uvicorn"):
    try:
        module = importlib.import_module(name)
        print(f"  {name} {getattr(module, '__version__', '?')}")
    except Exception as error:  # noqa: BLE001 - report and go on
        print(f"  {name}: not importable ({type(error).__name__}: {error})")
import replay.backends.cuda as cuda_backend  # noqa: F401 - the import is the check
from replay.backends import get_backend
from replay.backends.cuda import kernels, nvrtc
from replay.backends.cuda.devices import gpu_xp
get_backend("cuda")
print(f"replay.backends.cuda imports; {len(kernels.sources())} .cu files, {len(kernels.kernel_index())} kernels;"
      f" NVRTC options {kernels.OPTIONS}")
print("nvrtc:", "available" if nvrtc.available() else "NOT available")
xp = gpu_xp()
print("gpu_xp():", "cupy (replay --backend cuda runs on the GPU)" if xp is not None else
      "None (replay --backend cuda would run in the CPU emulator)")
try:
    import torch
    print("torch.cuda.is_available():", torch.cuda.is_available(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
except ImportError:
    pass
archive = os.environ.get("ALEXNET_ARCHIVE", "")
print("ALEXNET_ARCHIVE:", archive or "(unset)")
EOF
    echo
    echo "== the release"
    if [ -n "${ALEXNET_ARCHIVE:-}" ] && [ -d "$ALEXNET_ARCHIVE/layers" ]; then
        echo "ALEXNET_ARCHIVE=$ALEXNET_ARCHIVE: $(find "$ALEXNET_ARCHIVE" -type f | wc -l) files"
    else
        echo "-- the release: NOT FOUND (run 'bash bench/gpu_verify.sh prepare' here and name .carry in carry)"
        FAILS+=("release not found")
    fi
    step cli-replay-options 60 "$PY" - "$NET" <<'EOF'
import sys
from webapp.cli import build_parser
argv = ["replay", sys.argv[1], "--backend", "cuda", "--scale", "small", "--max-minibatches", "1", "--db", "/tmp/x.sqlite"]
args = build_parser().parse_args(argv)
assert (args.backend, args.scale, args.max_minibatches) == ("cuda", "small", 1), args
print("alexnet-archive", " ".join(argv), "parses")
EOF
    step cli-replay-plan 120 bash -c 'set -o pipefail; "$@" | sed -n "1,3p;/^total parameters/p"' _ \
        "$PY" -m webapp.cli replay "$NET" --plan
    if [ "$HAVE_GPU" = 1 ]; then
        step load-every-kernel-on-the-gpu 240 "$PY" - <<'EOF'
import time
import cupy
import numpy as np
from replay.backends.cuda import kernels
device = cupy.cuda.Device()
print("cupy", cupy.__version__, "device", device.id, cupy.cuda.runtime.getDeviceProperties(device.id)["name"].decode(),
      "compute capability", device.compute_capability, "CUDA runtime", cupy.cuda.runtime.runtimeGetVersion())
for name, path in sorted(kernels.kernel_index().items(), key=lambda item: (item[1].name, item[0])):
    t0 = time.perf_counter()
    function = kernels.module_for(path, "cupy").get_function(name)
    regs, shared, local = (getattr(function, a, "?") for a in ("num_regs", "shared_size_bytes", "local_size_bytes"))
    print(f"  {path.name}: {name} loaded ({regs} registers, {shared} B static shared, {local} B local,"
          f" {1e3 * (time.perf_counter() - t0):.0f} ms)")
x = cupy.arange(1 << 20, dtype=cupy.float32)
assert float((x * 2).sum()) == float(np.arange(1 << 20, dtype=np.float64).sum() * 2)
print("every kernel compiled by NVRTC through cupy.RawModule and loaded on the device")
EOF
        if [ -f "$REPO/bench/cuda_kernels.py" ] && grep -q -- '--smoke' "$REPO/bench/cuda_kernels.py"; then
            step cuda-kernels-smoke 240 "$PY" "$REPO/bench/cuda_kernels.py" --smoke
        else
            echo "-- cuda-kernels-smoke: skipped (bench/cuda_kernels.py has no --smoke)"
            NOTES+=("bench/cuda_kernels.py --smoke not there: skipped")
        fi
        if [ -f "$REPO/bench/cupy_smoke.py" ]; then
            step cupy-smoke 240 "$PY" "$REPO/bench/cupy_smoke.py"
        else
            echo "-- cupy-smoke: skipped (no bench/cupy_smoke.py)"
            NOTES+=("bench/cupy_smoke.py not there: skipped")
        fi
    else
        no_gpu "load-every-kernel-on-the-gpu and the CuPy smoke tests"
    fi
}

PARALLEL=()
use_xdist() {  # use_xdist MAX: PARALLEL=(-n N), N <= MAX, where pytest-xdist is installed; else () and a note
    PARALLEL=()
    if "$PY" -c "import xdist" 2>/dev/null; then
        local n
        n=$(nproc)
        [ "$n" -gt "$1" ] && n=$1
        PARALLEL=(-n "$n")
    else
        NOTES+=("pytest-xdist not installed: tests ran serially")
    fi
}

test_counts() {  # test_counts FILE LABEL: one line of counts from a junit file
    local counts
    read -r -a counts <<< "$(junit_counts "$1")"
    echo "$2: ${counts[0]} collected, $((counts[0] - counts[1] - counts[2] - counts[3])) passed, ${counts[1]} failed, ${counts[2]} errors, ${counts[3]} skipped"
}

phase_tests() {
    cd "$REPO" || return 1
    # a few workers: the NumPy references of the full 2012 shapes run on the CPU beside the GPU work
    use_xdist 4
    step gpu-tests 200 "$PY" -m pytest tests/cuda -m gpu -v -rs -p no:cacheprovider -o "junit_family=xunit2" \
        "${PARALLEL[@]+"${PARALLEL[@]}"}" --junitxml "$OUT/gpu-tests.xml"
    local rc=$? counts
    [ "$rc" -eq 5 ] && echo "   (pytest exit 5: no gpu test was collected)"
    read -r -a counts <<< "$(junit_counts "$OUT/gpu-tests.xml")"
    echo "   $(test_counts "$OUT/gpu-tests.xml" "gpu tests")"
    if [ "$HAVE_GPU" != 1 ]; then
        no_gpu "${counts[3]} gpu tests (a module skipped at import counts once)"
    elif [ "${counts[3]}" -gt "${counts[4]}" ]; then
        echo "-- gpu-tests: $((counts[3] - counts[4])) skipped on a machine with a GPU (besides ${counts[4]} that need two)"
        FAILS+=("gpu tests: $((counts[3] - counts[4])) skipped although a GPU is here")
    elif [ "${counts[4]}" -gt 0 ]; then
        NOTES+=("${counts[4]} gpu test(s) need two CUDA devices: skipped on this one")
    fi
}

phase_emulated() {  # the rest of tests/cuda: the emulator, NVRTC and engine tests (with a GPU, the engine ones use it)
    cd "$REPO" || return 1
    use_xdist 8
    step cuda-tests 420 "$PY" -m pytest tests/cuda -m "not gpu" -q -rs -p no:cacheprovider -o "junit_family=xunit2" \
        "${PARALLEL[@]+"${PARALLEL[@]}"}" --junitxml "$OUT/cuda-tests.xml"
    echo "   $(test_counts "$OUT/cuda-tests.xml" "the other tests of tests/cuda")"
}

# compute-sanitizer: on PATH, else where the CUDA toolkit keeps it
find_sanitizer() {
    command -v compute-sanitizer 2>/dev/null && return 0
    local candidate
    for candidate in /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda*/bin/compute-sanitizer \
                     /usr/local/cuda*/compute-sanitizer/compute-sanitizer /opt/nvidia/*/compute-sanitizer; do
        [ -x "$candidate" ] && { echo "$candidate"; return 0; }
    done
    return 1
}

phase_sanitize() {
    cd "$REPO" || return 1
    local replay=("$PY" -m webapp.cli replay "$NET" --backend cuda --scale small --max-minibatches 1)
    local db
    db=$(mktemp -d "${TMPDIR:-/tmp}/gpu-verify.XXXXXX") || return 1
    # shellcheck disable=SC2064
    trap "rm -rf '$db'" EXIT  # expanded now: the phase's subshell runs it when it ends
    step cli-replay-help 60 bash -c '"$@" --help | grep -q -- "--backend" && "$@" --help | grep -q -- "--scale" && echo "replay --help lists --backend and --scale"' _ "$PY" -m webapp.cli replay
    local sanitizer
    if sanitizer=$(find_sanitizer); then
        echo "compute-sanitizer: $sanitizer ($("$sanitizer" --version 2>&1 | tail -1))"
    else
        echo "-- compute-sanitizer: NOT FOUND (looked on PATH and under /usr/local/cuda*)"
        if [ "$REQUIRE_GPU" = 1 ]; then
            FAILS+=("compute-sanitizer not found")
        else
            NOTES+=("compute-sanitizer not found: the 4 sanitizer runs cannot run here")
        fi
    fi
    if [ "$HAVE_GPU" != 1 ]; then
        no_gpu "the replay of #$NET on the GPU and the 4 compute-sanitizer runs"
        return
    fi
    # The plain run first: the CLI, the release and the GPU path work, and it takes this long unsanitized.
    # Every run must say it ran on backend cuda: without a usable CuPy the CLI falls back to the emulator.
    local on_gpu='"$@" 2>&1 | tee "$0"; rc=${PIPESTATUS[0]}; [ "$rc" -eq 0 ] || exit "$rc"
        grep -q "on backend cuda$" "$0" || { echo "the replay did not run on backend cuda (CuPy unusable?)"; exit 1; }'
    step "replay-$NET-plain" 120 bash -c "$on_gpu" "$db/plain.out" "${replay[@]}" --db "$db/plain.sqlite"
    [ -n "$sanitizer" ] || return
    # Shares of the budget, most important first. A tool cut short is INCONCLUSIVE (a failure of the phase).
    # -lineinfo (replay/backends/cuda/kernels.py gpu_options) so that findings name the .cu line; no memory
    # pools (replay/backends/cuda/devices.py LogicalGpus) so that memcheck sees an overrun into a neighbour
    # array, which inside one pool chunk it cannot.
    local -x ALEXNET_NVRTC_LINEINFO=1 ALEXNET_CUDA_NO_POOL=1  # this phase only (not the bench after it)
    local tool limit
    for tool in ${GPU_VERIFY_SANITIZERS:-memcheck:100 racecheck:150 synccheck:60 initcheck:60}; do
        limit=${tool#*:}
        tool=${tool%:*}
        local extra=()
        [ "$tool" = initcheck ] && extra=(--track-unused-memory no)
        step "$tool" "$limit" bash -c "$on_gpu" "$db/$tool.out" "$sanitizer" --tool "$tool" --error-exitcode 86 --print-limit 40 \
            --target-processes all "${extra[@]+"${extra[@]}"}" "${replay[@]}" --db "$db/$tool.sqlite"
        [ $? -eq 86 ] && echo "   $tool REPORTED ERRORS (exit status 86): see the lines above"
    done
}

phase_bench() {
    cd "$REPO" || return 1
    step bench-scripts-start 60 bash -c '"$1" bench/cuda_kernels.py --help >/dev/null && "$1" bench/replay_gpu.py --help >/dev/null && echo "both bench scripts start (--help)"' _ "$PY"
    if [ "$HAVE_GPU" != 1 ]; then
        no_gpu "bench/cuda_kernels.py and bench/replay_gpu.py"
        return
    fi
    step replay-gpu 180 "$PY" bench/replay_gpu.py --json "$OUT/replay.json"
    step cuda-kernels 240 "$PY" bench/cuda_kernels.py --keep-going --json "$OUT/kernels.json"
}

# ---- main ---------------------------------------------------------------------------------------------------

[ $# -ge 1 ] || usage
if [ "$1" = prepare ]; then
    prepare
    exit $?
fi
[ $# -eq 2 ] || usage
PHASES=$1
[ "$PHASES" = all ] && PHASES=smoke,tests,sanitize,bench
IFS=, read -r -a PHASE_LIST <<< "$PHASES"
for phase in "${PHASE_LIST[@]}"; do
    case $phase in smoke|tests|sanitize|bench|emulated) ;; *) echo "unknown phase: $phase" >&2; usage ;; esac
done
mkdir -p "$2" || exit 1
OUT=$(cd "$2" && pwd)
cd "$REPO" || exit 1

export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# The tests read results with cupy.asnumpy on the legacy default stream, which waits for the logical GPUs'
# blocking streams (replay/backends/cuda/devices.py); CuPy's per-thread default stream would not.
unset CUPY_CUDA_PER_THREAD_DEFAULT_STREAM
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
if [ -d "$CARRIED/layers" ]; then
    export ALEXNET_ARCHIVE=$CARRIED
elif [ -z "${ALEXNET_ARCHIVE:-}" ] && [ -d "$REPO/../shared/AlexNet-Source-Code/layers" ]; then
    export ALEXNET_ARCHIVE=$REPO/../shared/AlexNet-Source-Code
fi
# The GPU as CuPy sees it decides which steps run (GPU_VERIFY_HAVE_GPU=1|0 overrides it, for rehearsals).
if [ -n "${GPU_VERIFY_HAVE_GPU:-}" ]; then
    HAVE_GPU=$GPU_VERIFY_HAVE_GPU
elif "$PY" -c "import cupy, sys; sys.exit(0 if cupy.cuda.runtime.getDeviceCount() > 0 else 1)" >/dev/null 2>&1; then
    HAVE_GPU=1
else
    HAVE_GPU=0
fi

overall=0
for phase in "${PHASE_LIST[@]}"; do
    log="$OUT/$phase.log"
    (
        PHASE_START=$SECONDS
        echo "gpu_verify $phase: $(date -u +%FT%TZ); GPU: $([ "$HAVE_GPU" = 1 ] && echo yes || echo 'none visible to CuPy');" \
             "ALEXNET_ARCHIVE=${ALEXNET_ARCHIVE:-unset}; budget $(remaining) s left"
        "phase_$phase"
        summary "$phase"
    ) 2>&1 | tee -a "$log"
    rc=${PIPESTATUS[0]}
    [ "$rc" -ne 0 ] && overall=1
    if [ "$(stat -c %s "$log")" -gt "$MAX_LOG_BYTES" ]; then  # keep the head and the tail (the summary)
        { head -c $((5 * 1024 * 1024)) "$log"; echo; echo "[... cut to fit the device's 16 MiB per file ...]";
          tail -c $((9 * 1024 * 1024)) "$log"; } > "$log.cut" && mv "$log.cut" "$log"
    fi
done
if [ ${#PHASE_LIST[@]} -gt 1 ]; then
    echo "gpu_verify $PHASES: $([ $overall -eq 0 ] && echo PASS || echo FAIL) ($((SECONDS - START)) s)"
fi
exit $overall
