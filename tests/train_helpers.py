"""Shared by the training tests: the tiny base config with quick settings, and comparisons."""

import json
import pathlib
import runpy

import jax
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Runs compared for equality use Adam with eps = 1e-3: Adam's first update is ≈ lr·sign(g), so with
# the default eps (1e-8) a gradient entry near 0 flips sign on a last-bit difference in reduction
# order (another mesh, another batch split) and moves its parameter by 2·lr. A larger eps makes the
# update a smooth function of the gradient, so the comparison tests the gradients themselves.
SMOOTH_ADAM = {"optim.eps": 1e-3}


def tiny_config(**overrides):
    """configs/tiny_base.py with quick settings, then dotted overrides; locked like on the command
    line (an unknown key is an error)."""
    config = runpy.run_path(str(ROOT / "configs" / "tiny_base.py"))["get_config"]()
    settings = {"num_steps": 2, "log_every": 1, "checkpoint_every": 1000, "sample_every": 0, **overrides}
    for dotted, value in settings.items():
        *parents, leaf = dotted.split(".")
        node = config
        for p in parents:
            node = node[p]
        node[leaf] = value
    config.lock()
    return config


def records(workdir) -> list[dict]:
    """The lines of ``WORKDIR/metrics.jsonl``."""
    return [json.loads(line) for line in (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()]


def max_abs_diff(a, b) -> float:
    diffs = jax.tree.map(lambda x, y: float(np.max(np.abs(np.asarray(x) - np.asarray(y)))), a, b)
    return max(jax.tree.leaves(diffs))
