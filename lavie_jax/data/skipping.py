"""Bad examples: the reasons, the ``skipped.jsonl`` log, and the guard that stops on a mostly-bad source.

Loading an example raises `BadExample(reason, detail)`; the pipeline's loader catches it, logs it
here and yields nothing for that index (grain drops the ``None``), so the next good example takes
its place — the replacement is deterministic because the order of indices is. Reasons:

    missing_file     the path does not exist
    empty            a zero-length file
    corrupt          the container/image cannot be opened, or has no video stream / no frames
    truncated        opens, but frames the clip needs cannot be decoded (cut-off or damaged data)
    too_short        fewer frames than the clip spans (with ``FrameSampling(short='skip')``)
    missing_caption  no caption, or only whitespace

The log is shared by processes (grain workers append to the same file: one ``os.write`` of one
line on an ``O_APPEND`` descriptor, which Linux keeps whole), so counts are read back from the file;
each (source, key, reason) is counted once however often a repeated epoch meets it again.
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import threading

LOG_NAME = "skipped.jsonl"
REASONS = ("missing_file", "empty", "corrupt", "truncated", "too_short", "missing_caption")


class BadExample(Exception):
    """An example that cannot be used; `reason` is one of `REASONS`."""

    def __init__(self, reason: str, detail: str = ""):
        if reason not in REASONS:
            raise ValueError(f"BadExample: reason={reason!r}; expected one of {REASONS}")
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


class TooManyBadExamples(RuntimeError):
    """More than the allowed fraction of a source's examples were bad."""


def check_caption(caption) -> str:
    """The caption as a stripped string; `BadExample('missing_caption')` when absent or blank."""
    if isinstance(caption, bytes):
        caption = caption.decode("utf-8", errors="replace")
    if caption is None or not isinstance(caption, str) or not caption.strip():
        raise BadExample("missing_caption", f"caption={caption!r}")
    return caption.strip()


class SkipLog:
    """Appends one JSON line per newly seen bad (source, key, reason) to ``directory/skipped.jsonl``.

    ``directory=None`` keeps the lines in memory (one process only: grain workers' skips are lost)."""

    def __init__(self, directory: str | os.PathLike | None):
        self.path = None if directory is None else pathlib.Path(directory) / LOG_NAME
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._logged: set[tuple[str, str, str]] = set()
        self._lines: list[str] = []
        self._lock = threading.Lock()

    def __getstate__(self):  # a grain worker gets the path only; its own set and lock are made fresh
        return {"path": self.path}

    def __setstate__(self, state):
        self.path = state["path"]
        self._logged, self._lines, self._lock = set(), [], threading.Lock()

    def record(self, *, source: str, key: str, path: str, reason: str, detail: str = "") -> None:
        entry = (source, key, reason)
        with self._lock:
            if entry in self._logged:
                return
            self._logged.add(entry)
            line = json.dumps(
                {"source": source, "key": key, "path": path, "reason": reason, "detail": detail[:300]}
            )
            if self.path is None:
                self._lines.append(line)
                return
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (line + "\n").encode("utf-8"))
            finally:
                os.close(fd)

    def entries(self) -> list[dict]:
        """Every logged bad example (distinct (source, key, reason), first occurrence kept)."""
        if self.path is None:
            lines = list(self._lines)
        elif self.path.exists():
            lines = self.path.read_text(encoding="utf-8").splitlines()
        else:
            lines = []
        seen, out = set(), []
        for line in lines:
            if not line.strip():
                continue
            item = json.loads(line)
            entry = (item["source"], item["key"], item["reason"])
            if entry not in seen:
                seen.add(entry)
                out.append(item)
        return out

    def counts(self) -> dict[str, int]:
        """``{reason: distinct bad examples}`` over all processes that wrote to this log."""
        return dict(collections.Counter(item["reason"] for item in self.entries()))


class BadFractionGuard:
    """Counts attempts and failures per source in this process; raises `TooManyBadExamples` once a
    source has had at least `min_attempts` attempts and more than `max_fraction` of them failed."""

    def __init__(self, max_fraction: float, min_attempts: int = 20):
        if not 0.0 <= max_fraction <= 1.0:
            raise ValueError(f"max_bad_fraction={max_fraction}; expected a fraction in [0, 1]")
        if min_attempts < 1:
            raise ValueError(f"min_attempts={min_attempts}; expected ≥ 1")
        self.max_fraction, self.min_attempts = max_fraction, min_attempts
        self._attempts: collections.Counter = collections.Counter()
        self._failures: dict[str, list[str]] = collections.defaultdict(list)
        self._lock = threading.Lock()

    def __getstate__(self):
        return {"max_fraction": self.max_fraction, "min_attempts": self.min_attempts}

    def __setstate__(self, state):
        self.__init__(state["max_fraction"], state["min_attempts"])

    def observe(self, source: str, failure: str | None = None) -> None:
        """One attempt at an example of `source`; `failure` describes it if it was bad."""
        with self._lock:
            self._attempts[source] += 1
            if failure is not None:
                self._failures[source].append(failure)
            attempts, failures = self._attempts[source], self._failures[source]
            if attempts >= self.min_attempts and len(failures) > self.max_fraction * attempts:
                shown = "; ".join(failures[:5])
                raise TooManyBadExamples(
                    f"source {source!r}: {len(failures)} of {attempts} examples were bad, more than "
                    f"max_bad_fraction={self.max_fraction}. First ones: {shown}. Fix the data (see "
                    f"{LOG_NAME}) or raise max_bad_fraction."
                )
