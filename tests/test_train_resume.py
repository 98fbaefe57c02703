"""Resuming is exact: 2N steps straight equal N steps, a SIGKILL, and a restart from the checkpoint.

The killed run is this file run as a script: after step N's checkpoint is on disk it sends itself
SIGKILL while step N+2 is starting (no chance to save). The restart reads the train state and the
grain iterator state from checkpoint N; losses must match step for step and the final parameters
must be the same. The killed run imports conftest, so it computes with the test session's settings
(without it, its matmuls ran at another precision and the losses differed by up to ~4e-6).
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import train_helpers

ROOT = train_helpers.ROOT
N = 3


def tiny_config(**overrides):
    return train_helpers.tiny_config(num_steps=2 * N, checkpoint_every=N, **overrides)


def losses_by_step(workdir) -> dict[int, float]:
    """The last logged loss of every step (a killed run's steps after its checkpoint are redone)."""
    lines = (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r["loss"] for r in map(json.loads, lines)}


def run_and_kill(workdir: str) -> None:
    """In the subprocess: train, and die by SIGKILL once checkpoint N is written, during step N+2."""
    from lavie_jax import parallel, train

    assemble, calls = parallel.global_batch, []

    def global_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == N + 2:
            saved = pathlib.Path(workdir) / "checkpoints" / str(N)
            deadline = time.time() + 120
            while not saved.is_dir() and time.time() < deadline:  # the async save finalises
                time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGKILL)
        return assemble(*args, **kwargs)

    parallel.global_batch = global_batch
    train.train_and_evaluate(tiny_config(), workdir)


def test_resume_after_sigkill_is_exact(tmp_path):
    from lavie_jax import train

    straight = train.train_and_evaluate(tiny_config(), tmp_path / "straight")
    proc = subprocess.run(
        [sys.executable, __file__, str(tmp_path / "killed")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    steps = sorted(int(p.name) for p in (tmp_path / "killed" / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [N]  # killed between checkpoints
    assert max(losses_by_step(tmp_path / "killed")) == N + 1  # it got past the checkpoint, then died
    resumed = train.train_and_evaluate(tiny_config(), tmp_path / "killed")

    expected, got = losses_by_step(tmp_path / "straight"), losses_by_step(tmp_path / "killed")
    assert sorted(got) == list(range(1, 2 * N + 1))
    # Run alone, this file passes the 1e-6 bound; inside the full
    # suite one run showed 3.2e-6 at step 5 (cause not found yet), so the bound stays 1e-5.
    for step in expected:
        assert abs(expected[step] - got[step]) <= 1e-5, (step, expected[step], got[step])
    assert train_helpers.max_abs_diff(straight, resumed) <= 1e-5


if __name__ == "__main__":
    import conftest  # noqa: F401  (the test session's JAX settings: the same matmul precision)

    run_and_kill(sys.argv[1])
