"""The train state: parameters, optimizer state, EMA, step counters and the RNG key, as one pytree.

Parameters are nested pure dicts (``nnx.to_pure_dict`` of the model's ``nnx.Param`` state; keys
mirror the module paths), float32 master weights. Only the *trainable* subset (all parameters, or
e.g. the temporal layers) gets optimizer moments and an EMA; frozen parameters are stored once.
"""

from __future__ import annotations

import math
import re

import flax
import jax
from flax import traverse_util

# Temporal layers of every stage (spec §2.1, §3.2, §4.2): base/interp ``attn_temp``/``norm_temp``,
# VSR ``attn_temporal``/``norm_temporal``/``resblock_temporal`` and the TemporalModule3D blocks.
TEMPORAL_PATTERN = r"(^|\.)(attn_temp|norm_temp|attn_temporal|norm_temporal|resblock_temporal|" + (
    r"down_temporal_blocks|mid_temporal_block|up_temporal_blocks)(\.|$)"
)
PRESETS = {"all": r".*", "temporal": TEMPORAL_PATTERN}


@flax.struct.dataclass
class TrainState:
    step: jax.Array  # micro-batches consumed (int32); the checkpoint number
    params: dict  # all parameters, float32
    opt_state: object  # optimizer state over the trainable subset
    ema_params: dict  # EMA of the trainable subset (frozen ones are their own EMA)
    rng: jax.Array  # raw uint32[2] key: checkpoints as a plain array
    bad_steps: jax.Array  # consecutive non-finite steps (int32)
    skipped: jax.Array  # non-finite steps skipped in total (int32)


def dotted(path: tuple) -> str:
    return ".".join(str(k) for k in path)


def trainable_predicate(trainable: str):
    """'all', 'temporal' or a regular expression searched in dotted parameter paths."""
    pattern = PRESETS.get(trainable, trainable)
    try:
        regex = re.compile(pattern)
    except re.error as err:
        raise ValueError(
            f"trainable={trainable!r} is not 'all', 'temporal' or a valid regex: {err}"
        ) from None
    return lambda name: regex.search(name) is not None


def split_trainable(params: dict, is_trainable) -> tuple[dict, dict]:
    """Two nested dicts: the trainable parameters and the frozen ones."""
    flat = traverse_util.flatten_dict(params)
    train = {k: v for k, v in flat.items() if is_trainable(dotted(k))}
    frozen = {k: v for k, v in flat.items() if not is_trainable(dotted(k))}
    return traverse_util.unflatten_dict(train), traverse_util.unflatten_dict(frozen)


def merge_params(trainable: dict, frozen: dict) -> dict:
    flat = {**traverse_util.flatten_dict(frozen), **traverse_util.flatten_dict(trainable)}
    return traverse_util.unflatten_dict(flat)


def check_trainable(params: dict, is_trainable, trainable: str) -> int:
    """Number of trainable parameters; an error when the selection is empty."""
    train, _ = split_trainable(params, is_trainable)
    count = sum(math.prod(x.shape) for x in jax.tree.leaves(train))
    if count == 0:
        raise ValueError(f"trainable={trainable!r} selects no parameter of the model")
    return count


def ema_update(ema: dict, params: dict, decay: float | jax.Array) -> dict:
    """``ema ← decay·ema + (1 − decay)·params`` (Polyak averaging)."""
    return jax.tree.map(lambda e, p: e + (1.0 - decay) * (p - e), ema, params)


def ema_params_full(state: TrainState, is_trainable) -> dict:
    """All parameters with the EMA in place of the trainable ones (what sampling and export use)."""
    _, frozen = split_trainable(state.params, is_trainable)
    return merge_params(state.ema_params, frozen)
