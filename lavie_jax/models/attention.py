"""Multi-head attention with SD's parameter layout (spec §1.5).

``to_q/to_k/to_v`` (no bias in the UNet, bias in the VAE), ``to_out.0`` with bias (``to_out.1`` is a
parameter-free Dropout(0)). Heads are split from channels as ``(..., H*D) → (..., H, D)``, H outermost.
Self-attention when no context is given, cross-attention otherwise.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lavie_jax.models import attention_core


class Attention(nnx.Module):
    # `set_impl` switches spatial/cross attention (long token sequences); temporal attention opts out.
    follows_set_impl = True

    def __init__(
        self,
        query_dim: int,
        heads: int,
        *,
        context_dim: int | None = None,
        qkv_bias: bool = False,
        impl: str = "xla",
        rngs: nnx.Rngs,
        dtype=jnp.float32,
    ):
        if heads <= 0 or query_dim % heads:
            raise ValueError(f"Attention: query_dim={query_dim} must be divisible by heads={heads}")
        if impl not in attention_core.IMPLEMENTATIONS:
            raise ValueError(f"Attention: impl={impl!r}; expected one of {attention_core.IMPLEMENTATIONS}")
        context_dim = context_dim or query_dim
        self.heads = heads
        self.impl = impl
        self.to_q = nnx.Linear(query_dim, query_dim, use_bias=qkv_bias, dtype=dtype, rngs=rngs)
        self.to_k = nnx.Linear(context_dim, query_dim, use_bias=qkv_bias, dtype=dtype, rngs=rngs)
        self.to_v = nnx.Linear(context_dim, query_dim, use_bias=qkv_bias, dtype=dtype, rngs=rngs)
        self.to_out = nnx.List([nnx.Linear(query_dim, query_dim, dtype=dtype, rngs=rngs)])

    def split_heads(self, x: jax.Array) -> jax.Array:
        return x.reshape(*x.shape[:-1], self.heads, x.shape[-1] // self.heads)  # (N, L, H, D)

    def project_out(self, x: jax.Array) -> jax.Array:
        return self.to_out[0](x.reshape(*x.shape[:-2], -1))  # (N, L, H*D) → (N, L, C)

    def __call__(self, x: jax.Array, context: jax.Array | None = None) -> jax.Array:
        """``x (N, Lq, C)``, ``context (N, Lk, Cc)`` or None → ``(N, Lq, C)``."""
        context = x if context is None else context
        q = self.split_heads(self.to_q(x))
        k = self.split_heads(self.to_k(context))
        v = self.split_heads(self.to_v(context))
        out = attention_core.attend(q, k, v, scale=q.shape[-1] ** -0.5, impl=self.impl)
        return self.project_out(out)


def set_impl(module: nnx.Module, impl: str) -> int:
    """Switch every spatial/cross `Attention` inside `module` (sparse-causal ones included) to `impl`;
    returns how many changed. Temporal attention (over F ≤ 61 frames, tiny score matrices) keeps its
    own setting."""
    if impl not in attention_core.IMPLEMENTATIONS:
        raise ValueError(f"attention impl={impl!r}; expected one of {attention_core.IMPLEMENTATIONS}")
    count = 0
    for _, node in nnx.iter_graph(module):
        if isinstance(node, Attention) and node.follows_set_impl:
            node.impl = impl
            count += 1
    return count
