"""Multi-host training: two processes (one CPU device each, gloo collectives), started the way a
cluster starts them (``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``), train the
tiny config as one job. Each host reads its own shard of the data; the global batch is host 0's
examples then host 1's. The same steps run in one process on one device, fed those same global
batches (both shards' iterators, concatenated), give the same losses and EMA parameters.

    pytest -m slow tests/test_train_multihost.py      # ~2 minutes on the 2-core machine
"""

import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
import train_helpers
from flax import traverse_util

from lavie_jax import train
from lavie_jax.data import pipeline
from lavie_jax.training import checkpoint, export
from lavie_jax.training import state as train_state

pytestmark = pytest.mark.slow
STEPS = 2
SETTINGS = {"num_steps": STEPS, "batch_size": 2, **train_helpers.SMOOTH_ADAM}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def run_two_hosts(workdir, logs) -> None:
    flags = [f"--config.{k}={v}" for k, v in SETTINGS.items()]
    flags += ["--config.log_every=1", "--config.sample_every=0", "--config.checkpoint_every=1000"]
    port = free_port()
    procs = []
    for index in range(2):
        env = dict(
            os.environ,
            JAX_PLATFORMS="cpu",
            XLA_FLAGS="--xla_force_host_platform_device_count=1",
            JAX_COORDINATOR_ADDRESS=f"localhost:{port}",
            JAX_NUM_PROCESSES="2",
            JAX_PROCESS_ID=str(index),
        )
        command = [sys.executable, "-m", "lavie_jax.train", "--config", "configs/tiny_base.py"]
        with open(logs / f"host{index}.log", "wb") as log:  # files, not pipes: nothing blocks on output
            procs.append(
                subprocess.Popen(
                    [*command, "--workdir", str(workdir), *flags],
                    env=env,
                    cwd=train_helpers.ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    codes = [p.wait(timeout=900) for p in procs]
    for index, code in enumerate(codes):
        output = (logs / f"host{index}.log").read_text(errors="replace")
        assert code == 0, f"host {index} exited with {code}:\n{output[-4000:]}"


class BothShards:
    """One process's stand-in for two hosts' data: host 0's batch, then host 1's, along the batch."""

    def __init__(self, iterators):
        self.iterators = iterators

    def __next__(self):
        parts = [next(it) for it in self.iterators]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def test_two_hosts_train_like_one_process_on_the_same_batches(tmp_path, monkeypatch):
    run_two_hosts(tmp_path / "two_hosts", tmp_path)
    two_hosts = train_helpers.records(tmp_path / "two_hosts")
    assert [r["step"] for r in two_hosts] == list(range(1, STEPS + 1))  # logged once, by host 0

    build_data, shard = train.build_data, {}

    def both_shards(config, host_batch_size, workdir, scaling_factor):
        iterators = []
        for index in range(2):
            shard["index"] = index
            iterators.append(build_data(config, host_batch_size // 2, workdir, scaling_factor))
        return BothShards(iterators)

    monkeypatch.setattr(pipeline, "host_shard", lambda index, count: (shard["index"], 2))
    monkeypatch.setattr(train, "build_data", both_shards)
    monkeypatch.setattr(checkpoint.Checkpointer, "save", lambda *args, **kwargs: None)  # no iterator state
    config = train_helpers.tiny_config(**SETTINGS)
    state = train.train_and_evaluate(config, tmp_path / "one_process")

    one = train_helpers.records(tmp_path / "one_process")
    for a, b in zip(two_hosts, one):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5, abs=1e-6), (a, b)
    saved, step = export.saved_run(tmp_path / "two_hosts")
    assert step == STEPS and saved.batch_size == 2
    ema = {train_state.dotted(k): v for k, v in traverse_util.flatten_dict(state.ema_params).items()}
    restored = export._flat(export.ema_model(tmp_path / "two_hosts", saved, step))
    assert set(restored) == set(ema)
    diff = max(float(np.max(np.abs(restored[k] - np.asarray(jax.device_get(ema[k]))))) for k in ema)
    assert diff <= 1e-5, diff
