"""Sinusoidal timestep embedding and its MLP (spec §1.3; diffusers ``Timesteps`` + ``TimestepEmbedding``)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx


def timestep_embedding(
    timesteps: jax.Array, dim: int, *, flip_sin_to_cos: bool = True, freq_shift: float = 0.0
) -> jax.Array:
    """``(B,)`` timesteps → ``(B, dim)``: ``[cos, sin]`` when flipped (SD); freqs 10000^(-i/(half-shift))."""
    half = dim // 2
    exponent = -math.log(10000.0) * jnp.arange(half, dtype=jnp.float32) / (half - freq_shift)
    angles = timesteps.astype(jnp.float32)[:, None] * jnp.exp(exponent)[None, :]  # (B, half)
    sin, cos = jnp.sin(angles), jnp.cos(angles)
    emb = jnp.concatenate([cos, sin] if flip_sin_to_cos else [sin, cos], axis=-1)
    if dim % 2:
        emb = jnp.pad(emb, ((0, 0), (0, 1)))
    return emb


class TimestepEmbedding(nnx.Module):
    """``linear_2(silu(linear_1(emb)))``."""

    def __init__(self, in_channels: int, time_embed_dim: int, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.linear_1 = nnx.Linear(in_channels, time_embed_dim, dtype=dtype, rngs=rngs)
        self.linear_2 = nnx.Linear(time_embed_dim, time_embed_dim, dtype=dtype, rngs=rngs)

    def __call__(self, emb: jax.Array) -> jax.Array:
        return self.linear_2(nnx.silu(self.linear_1(emb)))
