"""The same training step on 1 device and on 8 (``--xla_force_host_platform_device_count=8``).

The 8-device runs happen in a subprocess (this file run as a script: the pytest process already
initialised JAX with one device): a (2 data × 4 fsdp) step must equal the one-device step, and under
fsdp=8 each device must hold 1/8 of the parameters and optimizer state. The 8-device checkpoint is
then resumed in this process on 1 device.
"""

import json
import os
import pathlib
import subprocess
import sys

if __name__ == "__main__":  # the subprocess: 8 CPU devices, set before JAX is imported
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402
import train_helpers  # noqa: E402

ROOT = train_helpers.ROOT


def tiny_config(**overrides):
    settings = {"num_steps": 1, "batch_size": 8, "optim.warmup_steps": 0, **train_helpers.SMOOTH_ADAM}
    return train_helpers.tiny_config(**{**settings, **overrides})


def first_loss(workdir) -> float:
    return json.loads((pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()[0])["loss"]


def run_on_8_devices(workdir: pathlib.Path) -> dict:
    """In the subprocess. Writes the per-run params to ``<run>/params.npz`` for the parent."""
    from lavie_jax import train

    out = {"devices": jax.device_count()}
    meshes = {"mesh_2x4": {"mesh.data": 2, "mesh.fsdp": 4}, "one_device": {"mesh.num_devices": 1}}
    meshes["fsdp_8"] = {"mesh.data": 1, "mesh.fsdp": 8}
    states = {}
    for name, mesh in meshes.items():
        states[name] = train.train_and_evaluate(tiny_config(**mesh), workdir / name)
        out[f"{name}_loss"] = first_loss(workdir / name)
    sharded, single = states["mesh_2x4"], states["one_device"]
    out["param_diff_2x4_vs_1"] = train_helpers.max_abs_diff(sharded.params, single.params)
    out["ema_diff_2x4_vs_1"] = train_helpers.max_abs_diff(sharded.ema_params, single.ema_params)
    leaves = jax.tree.leaves((states["fsdp_8"].params, states["fsdp_8"].opt_state))
    out["total_bytes"] = sum(x.nbytes for x in leaves)
    out["per_device_bytes"] = max(
        sum(s.data.nbytes for x in leaves for s in x.addressable_shards if s.device == d)
        for d in jax.devices()
    )
    try:
        train.train_and_evaluate(tiny_config(batch_size=4, **{"mesh.data": 8}), workdir / "bad_batch")
    except ValueError as err:
        out["batch_error"] = str(err)
    return out


def test_sharded_steps_equal_one_device_and_fsdp_splits_memory(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    proc = subprocess.run(
        [sys.executable, __file__, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == 8
    assert abs(out["mesh_2x4_loss"] - out["one_device_loss"]) <= 1e-5
    assert out["param_diff_2x4_vs_1"] <= 1e-5 and out["ema_diff_2x4_vs_1"] <= 1e-5
    assert out["per_device_bytes"] <= out["total_bytes"] / 8 * 1.05, out
    assert "batch_size=4" in out["batch_error"] and "data-parallel size 8" in out["batch_error"]

    # The fsdp=8 checkpoint (step 1) resumes here, on 1 device, and continues exactly like the
    # one-device run continued to step 2.
    from lavie_jax import train

    resumed = train.train_and_evaluate(tiny_config(num_steps=2), tmp_path / "fsdp_8")
    assert int(resumed.step) == 2
    single = train.train_and_evaluate(tiny_config(num_steps=2), tmp_path / "one_device")
    assert train_helpers.max_abs_diff(resumed.params, single.params) <= 1e-5


if __name__ == "__main__":
    print(json.dumps(run_on_8_devices(pathlib.Path(sys.argv[1]))))
