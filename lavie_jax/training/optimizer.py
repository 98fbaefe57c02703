"""AdamW with warmup, global-norm clipping and gradient accumulation (``optax.MultiSteps``).

The optimizer sees only the trainable subset of the parameters (`state.split_trainable`), so frozen
layers carry no moments at all.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

SCHEDULES = ("constant", "cosine")


def learning_rate_schedule(
    learning_rate: float, *, warmup_steps: int, schedule: str, total_steps: int
) -> optax.Schedule:
    """Linear warmup from 0, then constant or cosine decay to 0 at `total_steps` (optimizer updates)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"lr schedule={schedule!r}; expected one of {SCHEDULES}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps={warmup_steps}; expected ≥ 0")
    warmup = optax.linear_schedule(0.0, learning_rate, max(warmup_steps, 1))
    if schedule == "constant":
        after = optax.constant_schedule(learning_rate)
    else:
        after = optax.cosine_decay_schedule(learning_rate, max(total_steps - warmup_steps, 1))
    if warmup_steps == 0:
        return after
    return optax.join_schedules([warmup, after], [warmup_steps])


def make_optimizer(
    learning_rate: optax.Schedule,
    *,
    weight_decay: float,
    b1: float,
    b2: float,
    eps: float,
    clip_norm: float,
    accumulate_steps: int,
) -> optax.GradientTransformation:
    """``clip_by_global_norm → adamw``, applied once every `accumulate_steps` micro-batches.

    ``MultiSteps`` averages the micro-batch gradients and returns zero updates in between; the
    schedule counts real updates only. With one step it is left out (it would hold a gradient-sized
    buffer for nothing). ``clip_norm ≤ 0`` disables clipping.
    """
    if accumulate_steps < 1:
        raise ValueError(f"accumulate_steps={accumulate_steps}; expected ≥ 1")
    parts = [optax.clip_by_global_norm(clip_norm)] if clip_norm > 0 else []
    parts.append(optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay))
    tx = optax.chain(*parts)
    if accumulate_steps == 1:
        return tx
    return optax.MultiSteps(tx, every_k_schedule=accumulate_steps).gradient_transformation()


def applied_update(opt_state) -> jax.Array:
    """True when the last `update` changed the parameters (always, without accumulation)."""
    if isinstance(opt_state, optax.MultiStepsState):
        return opt_state.mini_step == 0  # MultiSteps resets its counter after a real update
    return jnp.bool_(True)
