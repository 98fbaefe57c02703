"""Device mesh, the logical sharding rules, and multi-host start-up.

One mesh with axes ``('data', 'fsdp', 'tensor')`` (``AxisType.Auto``: GSPMD propagates shardings
through the step, no ``out_sharding`` arguments inside models). Modules carry no annotations:
`logical_axes` names each parameter dimension from its path and shape, and one table, `RULES`, maps
logical names to the mesh axes they may be split over. The batch is split over ``('data', 'fsdp')``,
so the same code runs on 1 device, a host of 8, or a pod: only the mesh shape changes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")  # every data-parallel replica (plain DP and FSDP ranks) gets its slice

# Logical dimension name → mesh axes it may be split over, in order of preference. Each mesh axis
# shards at most one dimension of a parameter; 'fsdp' goes to the largest eligible dimension that
# it divides, anything not divisible stays replicated. Biases and norm scales are split too, so
# per-device memory really is 1/fsdp of the whole; conv taps (3×3) never are.
RULES: dict[str, tuple[str, ...]] = {
    "out_features": ("tensor", "fsdp"),  # Linear/conv output channels (kernel (..., in, out))
    "in_features": ("fsdp",),
    "vocab": ("fsdp",),  # embedding tables (num_embeddings, features)
    "embed": ("fsdp",),
    "channels": ("fsdp",),  # biases, norm scales
    "kernel_taps": (),  # conv kernel (kh, kw[, kt]) extents
}


def logical_axes(path: Sequence[str], shape: Sequence[int]) -> tuple[str, ...]:
    """Name every dimension of a parameter from its path (last key) and shape.

    Conv kernels ``(kh, kw, in, out)`` / ``(kt, 1, 1, in, out)``, dense kernels ``(in, out)``,
    embedding tables ``(n, features)``, vectors ``(C,)``.
    """
    ndim = len(shape)
    if ndim == 0:
        return ()
    if ndim == 1:
        return ("channels",)
    if path and str(path[-1]) == "embedding":
        return ("kernel_taps",) * (ndim - 2) + ("vocab", "embed")
    return ("kernel_taps",) * (ndim - 2) + ("in_features", "out_features")


def partition_spec(names: Sequence[str], shape: Sequence[int], mesh: Mesh) -> P:
    """Resolve logical names to a PartitionSpec with `RULES` on `mesh` (axes of size 1 are skipped)."""
    assigned: list[str | None] = [None] * len(shape)
    for axis in ("tensor", "fsdp"):  # the narrower choice first; 'data' never splits parameters
        size = mesh.shape[axis]
        if size == 1:
            continue
        # Candidates: free dims that list this axis and that it divides; the largest wins.
        candidates = [
            (-dim, RULES[name].index(axis), i)
            for i, (name, dim) in enumerate(zip(names, shape))
            if assigned[i] is None and axis in RULES[name] and dim % size == 0
        ]
        if candidates:
            assigned[min(candidates)[2]] = axis
    return P(*assigned)


def _key_name(key) -> str:
    return str(getattr(key, "key", getattr(key, "idx", getattr(key, "name", key))))


def param_specs(tree, mesh: Mesh):
    """PartitionSpecs for every leaf of a parameter-shaped pytree (params, EMA, optimizer moments)."""

    def spec(path, leaf):
        shape = np.shape(leaf)
        names = tuple(_key_name(k) for k in path)
        return partition_spec(logical_axes(names, shape), shape, mesh)

    return jax.tree_util.tree_map_with_path(spec, tree)


def param_shardings(tree, mesh: Mesh):
    return jax.tree.map(lambda s: NamedSharding(mesh, s), param_specs(tree, mesh))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (example) dimension split over ``('data', 'fsdp')``, the rest replicated."""
    return NamedSharding(mesh, P(BATCH_AXES))


def data_parallel_size(mesh: Mesh) -> int:
    return math.prod(mesh.shape[a] for a in BATCH_AXES)


def resolve_mesh_shape(shape: Sequence[int], num_devices: int) -> tuple[int, ...]:
    """Replace a single ``-1`` by the remaining devices; the product must equal `num_devices`."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != len(MESH_AXES):
        raise ValueError(f"mesh shape={shape}: expected {len(MESH_AXES)} sizes for axes {MESH_AXES}")
    if shape.count(-1) > 1 or any(s == 0 or s < -1 for s in shape):
        raise ValueError(f"mesh shape={shape}: expected positive sizes and at most one -1 ('the rest')")
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if num_devices % known:
            raise ValueError(
                f"mesh shape={shape}: the fixed axes use {known} devices, which does not divide the "
                f"{num_devices} devices available"
            )
        shape = tuple(num_devices // known if s == -1 else s for s in shape)
    if math.prod(shape) != num_devices:
        raise ValueError(
            f"mesh shape={shape} for axes {MESH_AXES} needs {math.prod(shape)} devices, "
            f"but {num_devices} are in use"
        )
    return shape


def make_mesh(shape: Sequence[int], devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A mesh over `devices` (default: all) with axes ``('data', 'fsdp', 'tensor')``, Auto axis types."""
    devices = list(jax.devices() if devices is None else devices)
    shape = resolve_mesh_shape(shape, len(devices))
    return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES), devices=devices)


def check_batch_size(global_batch_size: int, mesh: Mesh) -> None:
    """The global batch must split evenly over data-parallel replicas and over hosts."""
    dp = data_parallel_size(mesh)
    if global_batch_size <= 0 or global_batch_size % dp:
        raise ValueError(
            f"batch_size={global_batch_size} must be a positive multiple of the data-parallel size "
            f"{dp} (mesh data={mesh.shape['data']} × fsdp={mesh.shape['fsdp']})"
        )
    if global_batch_size % jax.process_count():
        raise ValueError(
            f"batch_size={global_batch_size} must be divisible by the number of hosts {jax.process_count()}"
        )


def host_batch_size(global_batch_size: int) -> int:
    """Examples this host loads per step (each host reads its own shard of the data)."""
    return global_batch_size // jax.process_count()


def global_batch(local: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Assemble global arrays (split over ``('data', 'fsdp')``) from every host's local examples."""
    sharding = batch_sharding(mesh)
    out = {}
    for name, value in local.items():
        value = np.asarray(value)
        global_shape = (value.shape[0] * jax.process_count(), *value.shape[1:])
        out[name] = jax.make_array_from_process_local_data(sharding, value, global_shape)
    return out


def initialize_distributed(mode: str) -> bool:
    """Start multi-host JAX. ``mode``: 'on' always, 'off' never, 'auto' when the environment asks
    (``JAX_COORDINATOR_ADDRESS`` set, or ``LAVIE_JAX_DISTRIBUTED=1``). Returns whether it ran.

    The coordinator, process count and id come from ``JAX_COORDINATOR_ADDRESS`` (read by JAX),
    ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` (read here: JAX itself does not), or JAX detects a
    SLURM, Open MPI or Cloud TPU cluster.
    """
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"distributed={mode!r}; expected 'auto', 'on' or 'off'")
    wanted = mode == "on" or (
        mode == "auto"
        and (
            bool(os.environ.get("JAX_COORDINATOR_ADDRESS")) or os.environ.get("LAVIE_JAX_DISTRIBUTED") == "1"
        )
    )
    if wanted:
        jax.distributed.initialize(**process_env())
    return wanted


def barrier(name: str, *, timeout_s: float) -> None:
    """Every process waits here until all have arrived (at most `timeout_s`). It uses the distributed
    service's barrier, not a collective: a first collective gives up after 30 s when one host is
    still busy (writing the synthetic set, say), which `sync_global_devices` would be."""
    if jax.process_count() == 1:
        return
    from jax._src import distributed  # the client jax.distributed.initialize() made

    distributed.global_state.client.wait_at_barrier(name, int(timeout_s * 1000))


def process_env() -> dict[str, int]:
    """``num_processes`` / ``process_id`` from ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID`` when set."""
    out = {}
    for name, var in (("num_processes", "JAX_NUM_PROCESSES"), ("process_id", "JAX_PROCESS_ID")):
        value = os.environ.get(var, "").strip()
        if value:
            if not value.isdigit():
                raise ValueError(f"{var}={value!r}; expected a non-negative integer")
            out[name] = int(value)
    return out
