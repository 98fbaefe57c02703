"""Position signals of LaVie's temporal attention (spec §1.6): rotary embedding and T5 relative bias.

* RoPE as ``rotary_embedding_torch.RotaryEmbedding(dim=32)`` applies it (``freqs_for='lang'``, theta
  10000, no xpos): positions ``0..F-1``, inverse frequencies ``1/theta^(2i/R)``, each angle shared by an
  **interleaved** channel pair (GPT-J style, not NeoX halves), and only the first ``R`` channels of each
  head rotated; the rest pass through.
* The relative-position bias is T5's bidirectional bucketing of ``n = i - j`` (query i, key j) into
  ``num_buckets`` learned per-head scalars. The bucket table depends only on the static frame count,
  so it is computed in numpy at trace time.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def rope_frequencies(rotary_dim: int = 32, theta: float = 10000.0) -> np.ndarray:
    """Inverse frequencies ``1/theta^(arange(0, R, 2)/R)``, ``(R/2,)`` float32 (as the library's init)."""
    if rotary_dim <= 0 or rotary_dim % 2:
        raise ValueError(f"rope_frequencies: rotary_dim={rotary_dim}; expected a positive even number")
    exponent = np.arange(0, rotary_dim, 2, dtype=np.float32) / np.float32(rotary_dim)  # (R/2,)
    return (np.float32(1.0) / np.float32(theta) ** exponent).astype(np.float32)


def _rotate_half(x: jax.Array) -> jax.Array:
    """Interleaved pairs: ``[x0, x1, x2, x3, …] → [-x1, x0, -x3, x2, …]``."""
    pairs = x.reshape(*x.shape[:-1], x.shape[-1] // 2, 2)  # (..., R/2, 2)
    rotated = jnp.stack([-pairs[..., 1], pairs[..., 0]], axis=-1)  # (..., R/2, 2)
    return rotated.reshape(x.shape)  # (..., R)


def apply_rope(x: jax.Array, inv_freq: np.ndarray | jax.Array) -> jax.Array:
    """Rotate the first ``R = 2·len(inv_freq)`` channels of every head of ``x (..., F, H, D)``.

    Frame ``p`` is rotated by angles ``p·inv_freq`` (each repeated for its channel pair):
    ``x·cos + rotate_half(x)·sin``. Angles and cos/sin are fp32 (the library keeps ``freqs`` in fp32
    unless the whole model is cast); the result has the dtype of ``x``.
    """
    rotary_dim = 2 * inv_freq.shape[-1]
    if x.ndim < 3:
        raise ValueError(f"apply_rope: x must be (..., F, H, D), got shape {x.shape}")
    if x.shape[-1] < rotary_dim:
        raise ValueError(
            f"apply_rope: head dim {x.shape[-1]} (x shape {x.shape}) is smaller than rotary_dim={rotary_dim}"
        )
    num_frames = x.shape[-3]
    positions = jnp.arange(num_frames, dtype=jnp.float32)  # (F,)
    angles = positions[:, None] * jnp.asarray(inv_freq, jnp.float32)[None, :]  # (F, R/2)
    angles = jnp.repeat(angles, 2, axis=-1)[:, None, :]  # (F, 1, R): [a0, a0, a1, a1, …], broadcast over H
    rot, rest = x[..., :rotary_dim], x[..., rotary_dim:]  # (..., F, H, R), (..., F, H, D-R)
    rot32 = rot.astype(jnp.float32)
    rotated = rot32 * jnp.cos(angles) + _rotate_half(rot32) * jnp.sin(angles)
    return jnp.concatenate([rotated.astype(x.dtype), rest], axis=-1)  # (..., F, H, D)


def relative_position_buckets(num_frames: int, num_buckets: int = 32, max_distance: int = 32) -> np.ndarray:
    """T5 bidirectional buckets of ``n = i - j`` for query i, key j: ``(F, F)`` int64.

    Half the buckets serve ``n ≥ 0`` (key at or before the query), the other half, offset by
    ``num_buckets/2``, ``n < 0`` (key after the query). Within a half, ``|n| < max_exact =
    num_buckets/4`` is its own bucket; larger distances are log-spaced up to ``max_distance`` and
    capped at the last bucket. Computed in float32 like the original (truncation == floor here,
    the log is ≥ 0) and never at ``log(0)``.
    """
    if num_frames <= 0:
        raise ValueError(f"relative_position_buckets: num_frames={num_frames}; expected ≥ 1")
    if num_buckets < 4 or num_buckets % 4:
        raise ValueError(f"relative_position_buckets: num_buckets={num_buckets}; expected a multiple of 4")
    half = num_buckets // 2
    max_exact = half // 2
    if max_distance <= max_exact:
        raise ValueError(
            f"relative_position_buckets: max_distance={max_distance}; expected > num_buckets/4 = {max_exact}"
        )
    frames = np.arange(num_frames)
    n = frames[:, None] - frames[None, :]  # (F, F): query i minus key j
    distance = np.abs(n)
    # Distances below max_exact take the exact branch; clamping them first keeps log() away from 0.
    scaled = np.maximum(distance, max_exact).astype(np.float32) / np.float32(max_exact)
    log_ratio = np.log(scaled) / np.float32(np.log(max_distance / max_exact)) * np.float32(half - max_exact)
    if_large = np.minimum(max_exact + log_ratio.astype(np.int64), half - 1)
    return np.where(n < 0, half, 0) + np.where(distance < max_exact, distance, if_large)  # (F, F)


class RelativePositionBias(nnx.Module):
    """Per-head learned bias over frame offsets; parameter ``relative_attention_bias.embedding``."""

    def __init__(
        self,
        heads: int,
        num_buckets: int = 32,
        max_distance: int = 32,
        *,
        rngs: nnx.Rngs,
        dtype=jnp.float32,
    ):
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        relative_position_buckets(1, num_buckets, max_distance)  # validates the arguments early
        self.relative_attention_bias = nnx.Embed(num_buckets, heads, dtype=dtype, rngs=rngs)

    def __call__(self, num_frames: int) -> jax.Array:
        """``(heads, F, F)`` bias for a static frame count."""
        buckets = relative_position_buckets(num_frames, self.num_buckets, self.max_distance)  # (F, F)
        values = self.relative_attention_bias(jnp.asarray(buckets))  # (F, F, heads)
        return values.transpose(2, 0, 1)  # (heads, F, F)
