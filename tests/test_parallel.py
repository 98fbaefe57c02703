"""Mesh shapes, the logical sharding rules and batch assembly (lavie_jax/parallel.py).

Rules are checked on abstract meshes in-process; the 8-device checks run this file as a script in a
subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (the pytest process has
already initialised JAX with one device).
"""

import json
import os
import subprocess
import sys

import pytest

if __name__ == "__main__":  # the subprocess: 8 CPU devices, set before JAX is imported
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import AbstractMesh, AxisType  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from lavie_jax import parallel  # noqa: E402


def abstract_mesh(data, fsdp, tensor):
    return AbstractMesh((data, fsdp, tensor), parallel.MESH_AXES, axis_types=(AxisType.Auto,) * 3)


def test_logical_axes_from_path_and_shape():
    assert parallel.logical_axes(("conv1", "kernel"), (3, 3, 64, 128)) == (
        "kernel_taps",
        "kernel_taps",
        "in_features",
        "out_features",
    )
    assert parallel.logical_axes(("to_q", "kernel"), (64, 64)) == ("in_features", "out_features")
    assert parallel.logical_axes(("class_embedding", "embedding"), (1000, 64)) == ("vocab", "embed")
    assert parallel.logical_axes(("norm1", "scale"), (64,)) == ("channels",)
    assert parallel.logical_axes(("step",), ()) == ()


def test_fsdp_shards_the_largest_divisible_dimension():
    mesh = abstract_mesh(1, 8, 1)
    spec = lambda path, shape: parallel.partition_spec(parallel.logical_axes(path, shape), shape, mesh)
    assert spec(("k", "kernel"), (3, 3, 64, 128)) == P(None, None, None, "fsdp")
    assert spec(("k", "kernel"), (256, 64)) == P("fsdp", None)
    assert spec(("k", "kernel"), (12, 20)) == P(None, None)  # 8 divides neither: replicated
    assert spec(("k", "kernel"), (12, 16)) == P(None, "fsdp")  # the divisible one, though smaller
    assert spec(("n", "scale"), (64,)) == P("fsdp")  # vectors too: memory is 1/fsdp of the whole
    assert spec(("n", "scale"), (4,)) == P(None)
    assert spec(("e", "embedding"), (1000, 12)) == P("fsdp", None)


def test_tensor_axis_takes_output_features_and_fsdp_the_rest():
    mesh = abstract_mesh(1, 2, 4)
    shape = (64, 128)
    assert parallel.partition_spec(("in_features", "out_features"), shape, mesh) == P("fsdp", "tensor")
    mesh = abstract_mesh(2, 1, 1)  # pure data parallelism: parameters replicated
    assert parallel.partition_spec(("in_features", "out_features"), shape, mesh) == P(None, None)


def test_param_specs_walk_nested_dicts():
    tree = {"down_blocks": {0: {"conv1": {"kernel": np.zeros((3, 3, 8, 16)), "bias": np.zeros(16)}}}}
    specs = parallel.param_specs(tree, abstract_mesh(1, 8, 1))
    assert specs["down_blocks"][0]["conv1"]["kernel"] == P(None, None, None, "fsdp")
    assert specs["down_blocks"][0]["conv1"]["bias"] == P("fsdp")


def test_mesh_shape_resolution_and_errors():
    assert parallel.resolve_mesh_shape((-1, 1, 1), 8) == (8, 1, 1)
    assert parallel.resolve_mesh_shape((2, -1, 1), 8) == (2, 4, 1)
    with pytest.raises(ValueError, match=r"needs 6 devices, but 8 are in use"):
        parallel.resolve_mesh_shape((2, 3, 1), 8)
    with pytest.raises(ValueError, match=r"fixed axes use 3 devices, which does not divide the 8"):
        parallel.resolve_mesh_shape((3, -1, 1), 8)
    with pytest.raises(ValueError, match="at most one -1"):
        parallel.resolve_mesh_shape((-1, -1, 1), 8)
    with pytest.raises(ValueError, match="expected 3 sizes"):
        parallel.resolve_mesh_shape((8,), 8)


def test_distributed_mode_is_checked():
    with pytest.raises(ValueError, match="distributed='maybe'"):
        parallel.initialize_distributed("maybe")
    assert parallel.initialize_distributed("off") is False


def test_process_count_and_id_come_from_the_environment(monkeypatch):
    monkeypatch.delenv("JAX_NUM_PROCESSES", raising=False)
    monkeypatch.delenv("JAX_PROCESS_ID", raising=False)
    assert parallel.process_env() == {}
    monkeypatch.setenv("JAX_NUM_PROCESSES", "4")
    monkeypatch.setenv("JAX_PROCESS_ID", "3")
    assert parallel.process_env() == {"num_processes": 4, "process_id": 3}
    monkeypatch.setenv("JAX_PROCESS_ID", "three")
    with pytest.raises(ValueError, match="JAX_PROCESS_ID='three'; expected a non-negative integer"):
        parallel.process_env()


def run_on_8_devices() -> dict:
    """Executed in the subprocess: real shardings on a (2 data × 4 fsdp) mesh."""
    mesh = parallel.make_mesh((2, 4, 1))
    out = {"devices": len(jax.devices()), "mesh": dict(mesh.shape)}
    try:
        parallel.check_batch_size(6, mesh)
    except ValueError as err:
        out["batch_error"] = str(err)
    try:
        parallel.make_mesh((3, -1, 1))
    except ValueError as err:
        out["mesh_error"] = str(err)
    local = {"x": np.arange(8 * 3, dtype=np.float32).reshape(8, 3)}
    batch = parallel.global_batch(local, mesh)["x"]
    out["batch_shards"] = sorted({s.data.shape[0] for s in batch.addressable_shards})
    out["batch_equal"] = bool(np.array_equal(np.asarray(batch), local["x"]))
    params = {"w": {"kernel": np.ones((64, 32), np.float32)}, "n": {"scale": np.ones(32, np.float32)}}
    placed = jax.device_put(params, parallel.param_shardings(params, parallel.make_mesh((1, 8, 1))))
    out["kernel_shard"] = list(placed["w"]["kernel"].addressable_shards[0].data.shape)
    out["scale_shard"] = list(placed["n"]["scale"].addressable_shards[0].data.shape)
    return out


def test_on_eight_devices():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    proc = subprocess.run(
        [sys.executable, __file__], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == 8 and out["mesh"] == {"data": 2, "fsdp": 4, "tensor": 1}
    assert "batch_size=6" in out["batch_error"] and "data-parallel size 8" in out["batch_error"]
    assert "3 devices" in out["mesh_error"] and "8 devices" in out["mesh_error"]
    assert out["batch_shards"] == [1] and out["batch_equal"]  # 8 examples over 8 data-parallel ranks
    assert out["kernel_shard"] == [8, 32] and out["scale_shard"] == [4]


if __name__ == "__main__":
    print(json.dumps(run_on_8_devices()))
