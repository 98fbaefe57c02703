"""Shared benchmark helpers: timing, the matmul reference rate, peak RSS of a child process."""

from __future__ import annotations

import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import time


def timed(fn, repeats: int = 3) -> float:
    """Median wall time of `fn()` (which must block until its result is ready)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """fp32 n³ matmul rate in JAX on this machine, now (the machine's speed drifts ~2×)."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    return 2 * n**3 / timed(lambda: f(a).block_until_ready(), repeats) / 1e9


def peak_rss_gb() -> float:
    """This process's peak resident set size (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_child(*args: str, env: dict | None = None) -> dict:
    """Run ``python tools/benchmark.py args`` (a measurement in its own process, so its peak RSS is its
    own; `env` adds environment variables) and parse the JSON line it prints last."""
    script = pathlib.Path(__file__).resolve().parents[1] / "benchmark.py"
    out = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if out.returncode:
        raise RuntimeError(f"benchmark.py {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
