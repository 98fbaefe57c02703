"""Peak resident memory of this process over a block of code (a cascade stage), in GB.

    with rss.PeakRSS() as peak:
        run_stage()
    peak.gb   # the largest RSS seen while the block ran

``getrusage``'s peak only ever grows over the process's life, so it cannot tell the second stage's
peak from the first's; a background thread samples ``/proc/self/statm`` instead (every 20 ms; a
spike shorter than that can be missed). Where ``/proc`` is missing, the process peak is reported.
"""

from __future__ import annotations

import os
import resource
import threading

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_gb() -> float | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE / 2**30
    except OSError:
        return None


def process_peak_gb() -> float:
    """The process's peak RSS so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class PeakRSS:
    def __init__(self, interval: float = 0.02):
        self.interval, self.gb = interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while True:
            now = current_gb()
            self.gb = max(self.gb, process_peak_gb() if now is None else now)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        now = current_gb()
        self.gb = max(self.gb, process_peak_gb() if now is None else now)
