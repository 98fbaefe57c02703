"""The GEGLU feed-forward in token chunks (lavie_jax/models/feedforward.py).

Chunked output and gradients are compared with a float64 reference written here from spec §1.5
(``[value | gate] = x W1 + b1``, ``value · gelu_exact(gate)``, then ``W2``), and the compiled
program's temporary memory shows the chunking really happens at the base model's size.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lavie_jax import compiler_options
from lavie_jax.models import feedforward


@pytest.mark.parametrize(
    "tokens, per_token, budget",
    [(10, 4, 40), (10, 4, 12), (7, 3, 100), (1000, 8, 8), (97, 5, 64), (5, 10, 3)],
)
def test_token_slices_cover_in_order_within_budget(tokens, per_token, budget):
    slices = feedforward.token_slices(tokens, per_token, budget)
    assert slices[0].start == 0 and slices[-1].stop == tokens
    assert all(a.stop == b.start for a, b in zip(slices, slices[1:]))
    lengths = [s.stop - s.start for s in slices]
    assert all(n >= 1 and (n * per_token <= budget or n == 1) for n in lengths)
    assert len(slices) == math.ceil(tokens / max(1, budget // per_token))  # as few as fit
    assert max(lengths) - min(lengths) <= 1  # evened out


def reference(x, params):
    """float64 numpy GEGLU feed-forward from the spec."""
    w1, b1 = np.float64(params["net"]["0"]["proj"]["kernel"]), np.float64(params["net"]["0"]["proj"]["bias"])
    w2, b2 = np.float64(params["net"]["2"]["kernel"]), np.float64(params["net"]["2"]["bias"])
    h = np.float64(x) @ w1 + b1
    value, gate = np.split(h, 2, axis=-1)
    gelu = 0.5 * gate * (1 + np.vectorize(math.erf)(gate / math.sqrt(2)))
    return (value * gelu) @ w2 + b2


def test_chunked_equals_the_float64_reference_and_unchunked_gradients(monkeypatch):
    ff = feedforward.FeedForward(8, rngs=nnx.Rngs(0))
    graph, state = nnx.split(ff)
    params = jax.tree.map(np.asarray, nnx.to_pure_dict(state))
    x = jax.random.normal(jax.random.key(1), (2, 37, 8))  # 74 tokens, 64 hidden floats each

    def loss(state, x):
        return jnp.sum(jnp.sin(nnx.merge(graph, state)(x)))

    whole = jax.grad(loss, argnums=(0, 1))(state, x)
    monkeypatch.setattr(feedforward, "HIDDEN_BLOCK_BYTES", 64 * 4 * 10)  # 10 tokens a chunk: 8 chunks
    assert len(feedforward.token_slices(74, 64 * 4, feedforward.HIDDEN_BLOCK_BYTES)) == 8
    out = nnx.merge(graph, state)(x)
    assert out.shape == x.shape
    np.testing.assert_allclose(np.asarray(out), reference(np.asarray(x), params), atol=1e-5, rtol=1e-5)
    chunked = jax.grad(loss, argnums=(0, 1))(state, x)
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(chunked)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=1e-5)


def test_chunks_shrink_the_temporary_memory_at_the_base_models_size(monkeypatch):
    """The first level of the base UNet with CFG: 32 frames × 2560 tokens × 128 channels, compiled
    as the pipelines compile (XLA's memory-minimising scheduler on CPU runs the chunks one by one)."""
    ff = feedforward.FeedForward(128, rngs=nnx.Rngs(0))
    graph, state = nnx.split(ff)
    x = jax.ShapeDtypeStruct((32, 2560, 128), jnp.float32)

    def temp_bytes():
        lowered = jax.jit(lambda s, x: nnx.merge(graph, s)(x)).lower(state, x)
        compiled = lowered.compile(compiler_options=compiler_options.sampling())  # as the pipelines do
        return compiled.memory_analysis().temp_size_in_bytes

    chunked = temp_bytes()
    monkeypatch.setattr(feedforward, "HIDDEN_BLOCK_BYTES", 2**62)
    whole = temp_bytes()
    assert whole >= 32 * 2560 * 1024 * 4  # the (tokens, 2·inner) hidden activation at once
    assert chunked < whole / 3, (chunked, whole)
