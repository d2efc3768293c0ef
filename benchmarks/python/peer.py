"""What the PyTorch sides of the benchmarks share: the answer protocol (one "@@bench-result {json}"
line on stdout, progress on stderr), the timing loop, and importing torch with a clear answer when
it is missing."""
import json
import statistics
import sys
import time

MARKER = "@@bench-result "


def answer(obj):
    sys.stdout.write("\n" + MARKER + json.dumps(obj) + "\n")
    sys.stdout.flush()
    sys.exit(0)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def read_request():
    return json.loads(sys.stdin.read())


def import_torch():
    """torch, set to 2 threads and seeded; or answer "unavailable" and exit."""
    try:
        import torch
    except Exception as e:  # noqa: BLE001
        answer({"unavailable": f"PyTorch is not importable by {sys.executable} ({e}); "
                "on Debian: apt-get install python3-torch, or set BENCH_PYTHON to a Python with torch"})
    torch.set_num_threads(2)
    torch.manual_seed(0)
    return torch


def time_runs(timing, fn):
    """Warm-up runs, then timed runs until timing["runs"] or timing["budgetMs"]; the median in ms."""
    for _ in range(timing["warmup"]):
        fn()
    samples, total = [], 0.0
    while len(samples) < timing["runs"]:
        t0 = time.perf_counter()
        fn()
        dt = (time.perf_counter() - t0) * 1000.0
        samples.append(dt)
        total += dt
        if total >= timing["budgetMs"]:
            break
    return statistics.median(samples)
