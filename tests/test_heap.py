"""Freed heap memory goes back to the OS (lavie_jax/heap.py), measured as this process's RSS (Linux,
glibc: /proc/self/statm)."""

import numpy as np

from lavie_jax import heap


def resident_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def test_release_returns_free_pages_between_live_blocks():
    # 300 MB in 100 kB blocks (below glibc's mmap threshold: heap), then 9 of every 10 freed: the
    # survivors pin the heap, so glibc alone keeps the ~270 MB of free pages between them resident.
    blocks = [np.ones(100_000 // 8) for _ in range(3000)]
    survivors = blocks[::10]
    del blocks
    before = resident_mib()
    assert heap.release_free_memory() is True
    after = resident_mib()
    assert before - after > 150, (before, after)
    assert all(b[0] == 1 for b in survivors)  # the live blocks are untouched
