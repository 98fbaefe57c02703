"""Training logs in the workdir: ``metrics.jsonl`` (one JSON object per logged step) and TensorBoard
event files under ``tensorboard/``. Only process 0 writes."""

from __future__ import annotations

import json
import math
import os
import pathlib

import jax

from lavie_jax.training import tensorboard


class MetricsWriter:
    def __init__(self, workdir: str | os.PathLike):
        self.enabled = jax.process_index() == 0
        if not self.enabled:
            return
        workdir = pathlib.Path(workdir)
        self._jsonl = open(workdir / "metrics.jsonl", "a")
        self._events = tensorboard.EventWriter(workdir / "tensorboard")

    def write(self, step: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        scalars = {k: float(v) for k, v in scalars.items()}
        # JSON has no NaN/inf: write them as strings so the file stays valid.
        record = {k: (v if math.isfinite(v) else str(v)) for k, v in scalars.items()}
        self._jsonl.write(json.dumps({"step": step, **record}) + "\n")
        self._jsonl.flush()
        self._events.scalars(step, scalars)
        self._events.flush()

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            self._events.close()
