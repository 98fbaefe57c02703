"""The transformer feed-forward: GEGLU then a projection (spec §1.5).

``net.0.proj: Linear(C, 2·inner)`` gives ``[value | gate]`` (value half FIRST); the output is
``value * gelu_exact(gate)``, then ``net.2: Linear(inner, C)``; inner = 4C. ``net.1`` is a Dropout(0).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class GEGLU(nnx.Module):
    def __init__(self, dim: int, inner_dim: int, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.proj = nnx.Linear(dim, 2 * inner_dim, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        value, gate = jnp.split(self.proj(x), 2, axis=-1)
        return value * jax.nn.gelu(gate, approximate=False)


class FeedForward(nnx.Module):
    def __init__(self, dim: int, *, mult: int = 4, rngs: nnx.Rngs, dtype=jnp.float32):
        self.net = nnx.Dict({"0": GEGLU(dim, mult * dim, rngs=rngs, dtype=dtype)})
        self.net["2"] = nnx.Linear(mult * dim, dim, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.net["2"](self.net["0"](x))
