"""Classifier-free guidance with cond and uncond in one batch (Ho & Salimans 2022).

``eps = eps_u + s · (eps_c − eps_u)``. LaVie's stages disagree on the batch order (spec §5): base and
VSR put the unconditional half first, the interpolation stage the conditional half; the order only
matters for bit-exact parity, so it is explicit here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def batch(uncond: jax.Array, cond: jax.Array, uncond_first: bool) -> jax.Array:
    """Stack the two halves along the batch axis in the stage's order: ``(2B, ...)``."""
    return jnp.concatenate([uncond, cond] if uncond_first else [cond, uncond], axis=0)


def combine(output: jax.Array, scale: jax.Array | float, uncond_first: bool) -> jax.Array:
    """``(2B, ...)`` model output → guided ``(B, ...)``."""
    first, second = jnp.split(output, 2, axis=0)
    uncond, cond = (first, second) if uncond_first else (second, first)
    return uncond + scale * (cond - uncond)
