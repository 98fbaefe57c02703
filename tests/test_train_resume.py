"""Resuming is exact: 2N steps straight equal N steps, a SIGKILL, and a restart from the checkpoint.

Every run is this file run as a script in a fresh process: the straight run; the killed run, which
sends itself SIGKILL while step N+2 is starting once step N's checkpoint is on disk (no chance to
save); and the restart, which reads the train state and the grain iterator state from checkpoint N.
Losses must match step for step and the final parameters must be the same, within 1e-6. The scripts
import conftest (the test session's matmul precision). Fresh processes, so no state of earlier tests
enters, and a compilation cache of the test's own that starts empty, as on a clean machine: the
straight run compiles, the later runs load its programs.

Each run writes the synthetic set into its workdir; the sets must be byte-identical. (They once
were not: x264 at crf 12 wrote different bytes for a few clips in some processes that had loaded
JAX, and the losses then differed by ~1e-5 from step 1 — a data difference, no property of
resuming, which is why this is checked first.)
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


def run_to_the_end(workdir: str) -> None:
    """In the subprocess: train (or resume) to step 2N; the final parameters go to WORKDIR/final.npz."""
    import jax
    import numpy as np

    from lavie_jax import train

    state = train.train_and_evaluate(tiny_config(), workdir)
    leaves = jax.tree_util.tree_leaves_with_path(state.params)
    np.savez(
        pathlib.Path(workdir) / "final.npz", **{jax.tree_util.keystr(k): np.asarray(v) for k, v in leaves}
    )


def run(mode: str, workdir) -> subprocess.CompletedProcess:
    """This file as a script in a fresh process, with the compilation cache WORKDIR/../jax_cache."""
    env = {**os.environ, "LAVIE_JAX_CACHE_DIR": str(pathlib.Path(workdir).parent / "jax_cache")}
    return subprocess.run(
        [sys.executable, __file__, mode, str(workdir)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=ROOT,
        env=env,
    )


def differing_files(a: pathlib.Path, b: pathlib.Path) -> list[str]:
    names = sorted(
        {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
        | {p.relative_to(b) for p in b.rglob("*") if p.is_file()}
    )
    return [
        str(n)
        for n in names
        if not ((a / n).is_file() and (b / n).is_file() and (a / n).read_bytes() == (b / n).read_bytes())
    ]


def test_resume_after_sigkill_is_exact(tmp_path):
    import numpy as np

    straight = run("train", tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr[-3000:]
    killed = run("kill", tmp_path / "killed")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    steps = sorted(int(p.name) for p in (tmp_path / "killed" / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [N]  # killed between checkpoints
    assert max(losses_by_step(tmp_path / "killed")) == N + 1  # it got past the checkpoint, then died
    resumed = run("train", tmp_path / "killed")  # resumes from checkpoint N
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    (data_straight,) = (tmp_path / "straight").glob("synthetic_*")
    assert differing_files(data_straight, tmp_path / "killed" / data_straight.name) == []
    expected, got = losses_by_step(tmp_path / "straight"), losses_by_step(tmp_path / "killed")
    assert sorted(got) == list(range(1, 2 * N + 1))
    for step in expected:
        assert abs(expected[step] - got[step]) <= 1e-6, (step, expected[step], got[step])
    final = {name: np.load(tmp_path / name / "final.npz") for name in ("straight", "killed")}
    assert set(final["straight"].files) == set(final["killed"].files)
    gap = max(np.abs(final["straight"][k] - final["killed"][k]).max() for k in final["straight"].files)
    assert gap <= 1e-6, gap


if __name__ == "__main__":
    import conftest  # noqa: F401  (the test session's JAX settings: the same matmul precision)

    {"kill": run_and_kill, "train": run_to_the_end}[sys.argv[1]](sys.argv[2])
