"""A progress bar over denoising steps, fed from inside the compiled loop.

The loop calls `report(i)` (a ``jax.debug.callback``, i.e. a host callback once per step); the bar
itself lives on the host and is opened around the call with `bar(total)`. A program compiled without
progress has no callback at all (``tools/benchmark.py sample`` measures the cost of having one).
"""

from __future__ import annotations

import contextlib

import jax
from tqdm.auto import tqdm

_active: list[tqdm] = []


def _advance(i) -> None:
    if _active:
        _active[-1].update(int(i) + 1 - _active[-1].n)


def report(i: jax.Array) -> None:
    """Inside a jitted loop: tell the host that step `i` (0-based) is done."""
    jax.debug.callback(_advance, i)


@contextlib.contextmanager
def bar(total: int, *, enabled: bool = True, desc: str = "denoising"):
    if not enabled:
        yield None
        return
    with tqdm(total=total, desc=desc, unit="step") as progress_bar:
        _active.append(progress_bar)
        try:
            yield progress_bar
        finally:
            _active.pop()
