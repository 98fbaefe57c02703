"""Self-attention over frames with RoPE and a relative-position bias (spec §1.6).

The base model's ``attn_temp`` and the VSR model's ``attn_temporal``: every spatial location attends
over its own frames, ``x ((B·H·W), F, C)``::

    q = to_q(x) · d^-0.5                     # scaled BEFORE the rotation
    q, k = rope(q), rope(k)                  # first rotary_dim channels of each head, positions 0..F-1
    s = q·kᵀ + bias[heads, F, F]             # T5 relative buckets, one table per layer
    out = to_out.0(merge_heads(softmax(s) · v))

No mask. With ``rotary_dim=None, relative_position=False`` it is the interpolation model's plain
temporal multi-head attention (spec §3.2). The rotary frequencies are a constant recomputed at trace
time, not a parameter (the checkpoints' ``rotary_emb.freqs`` buffers are dropped by the converter).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lavie_jax.models import attention, attention_core, positions


class TemporalAttention(attention.Attention):
    """Parameters ``to_q/to_k/to_v`` (no bias), ``to_out.0`` (bias) and, with ``relative_position``,
    ``time_rel_pos_bias.relative_attention_bias.embedding (num_buckets, heads)``."""

    follows_set_impl = False

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        rotary_dim: int | None = 32,
        relative_position: bool = True,
        num_buckets: int = 32,
        max_distance: int = 32,
        impl: str = "xla",
        rngs: nnx.Rngs,
        dtype=jnp.float32,
    ):
        super().__init__(dim, heads, qkv_bias=False, impl=impl, rngs=rngs, dtype=dtype)
        head_dim = dim // heads
        if rotary_dim is not None:
            if rotary_dim <= 0 or rotary_dim % 2:
                raise ValueError(f"TemporalAttention: rotary_dim={rotary_dim}; expected a positive even int")
            if head_dim < rotary_dim:
                raise ValueError(
                    f"TemporalAttention: rotary_dim={rotary_dim} exceeds the head dim {head_dim} "
                    f"(dim={dim}, heads={heads}); expected rotary_dim ≤ dim // heads"
                )
        self.rotary_dim = rotary_dim
        self.relative_position = relative_position
        if relative_position:
            self.time_rel_pos_bias = positions.RelativePositionBias(
                heads, num_buckets, max_distance, rngs=rngs, dtype=dtype
            )

    def __call__(self, x: jax.Array) -> jax.Array:
        """``x (N, F, C)`` → ``(N, F, C)``; N is batch × spatial locations."""
        if x.ndim != 3:
            raise ValueError(f"TemporalAttention: x must be (N, F, C), got shape {x.shape}")
        num_frames = x.shape[1]
        head_dim = x.shape[-1] // self.heads
        q = self.split_heads(self.to_q(x) * head_dim**-0.5)  # (N, F, H, D)
        k = self.split_heads(self.to_k(x))  # (N, F, H, D)
        v = self.split_heads(self.to_v(x))  # (N, F, H, D)
        if self.rotary_dim is not None:
            inv_freq = positions.rope_frequencies(self.rotary_dim)  # (R/2,) constant
            q = positions.apply_rope(q, inv_freq)
            k = positions.apply_rope(k, inv_freq)
        bias = None
        if self.relative_position:
            bias = self.time_rel_pos_bias(num_frames).astype(q.dtype)[None]  # (1, H, F, F)
        # q already carries d^-0.5, so the core must not scale again.
        out = attention_core.attend(q, k, v, bias, scale=1.0, impl=self.impl)  # (N, F, H, D)
        return self.project_out(out)
