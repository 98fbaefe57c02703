"""The attention core: the chunked (memory-efficient) implementation equals plain XLA attention, values
and gradients, and its compiled program really holds less than one full score matrix."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lavie_jax.models import attention_core


def _inputs(seed, b, lq, lk, h, d, bias_shape=None):
    rng = np.random.default_rng(seed)
    # Spread-out logits (|s| up to ~20) so the online softmax must rescale when a later key chunk
    # holds a larger maximum; padding and masking errors would show.
    q = rng.normal(size=(b, lq, h, d)) * 2.0
    k = rng.normal(size=(b, lk, h, d))
    v = rng.normal(size=(b, lk, h, d))
    bias = None if bias_shape is None else rng.normal(size=bias_shape) * 3.0
    as32 = lambda a: None if a is None else jnp.asarray(a, jnp.float32)
    return as32(q), as32(k), as32(v), as32(bias)


CASES = [  # (Lq, Lk, query_chunk, key_chunk)
    (37, 37, 8, 16),  # self-attention, neither length a multiple of its chunk
    (37, 53, 8, 16),  # cross-attention, Lq < Lk
    (53, 37, 16, 8),  # cross-attention, Lq > Lk
    (37, 53, 64, 128),  # chunks longer than the sequences
    (32, 48, 8, 16),  # exact multiples: no padding at all
]


@pytest.mark.parametrize("lq,lk,qc,kc", CASES)
@pytest.mark.parametrize("bias_kind", ["none", "full", "per_head"])
def test_chunked_equals_xla(lq, lk, qc, kc, bias_kind):
    b, h, d = 2, 3, 8
    bias_shape = {"none": None, "full": (b, h, lq, lk), "per_head": (h, lq, lk)}[bias_kind]
    q, k, v, bias = _inputs(lq * 1000 + lk, b, lq, lk, h, d, bias_shape)
    scale = d**-0.5
    plain = attention_core.attend(q, k, v, bias, scale=scale, impl="xla")
    chunked = jax.jit(
        lambda q, k, v, bias: attention_core.attend(
            q, k, v, bias, scale=scale, impl="chunked", query_chunk=qc, key_chunk=kc
        )
    )(q, k, v, bias)
    assert chunked.shape == plain.shape == (b, lq, h, d)
    np.testing.assert_allclose(np.asarray(chunked), np.asarray(plain), atol=1e-5, rtol=0)


@pytest.mark.parametrize("with_bias", [False, True])
def test_chunked_gradient_equals_xla(with_bias):
    b, lq, lk, h, d = 2, 37, 53, 2, 8
    q, k, v, bias = _inputs(7, b, lq, lk, h, d, (b, h, lq, lk) if with_bias else None)
    cotangent = jnp.asarray(np.random.default_rng(8).normal(size=(b, lq, h, d)), jnp.float32)

    def loss(impl, q, k, v, bias):
        out = attention_core.attend(q, k, v, bias, scale=d**-0.5, impl=impl, query_chunk=8, key_chunk=16)
        return jnp.sum(out * cotangent)

    argnums = (0, 1, 2, 3) if with_bias else (0, 1, 2)
    grads_plain = jax.grad(lambda *a: loss("xla", *a), argnums=argnums)(q, k, v, bias)
    grads_chunked = jax.jit(jax.grad(lambda *a: loss("chunked", *a), argnums=argnums))(q, k, v, bias)
    for name, gp, gc in zip("qkvb", grads_plain, grads_chunked):
        assert float(jnp.abs(gp).max()) > 1e-3, f"degenerate gradient for {name}"
        np.testing.assert_allclose(np.asarray(gc), np.asarray(gp), atol=1e-5, rtol=0, err_msg=name)


def test_attend_rejects_bad_input():
    q = jnp.zeros((1, 4, 2, 8))
    with pytest.raises(ValueError, match="impl='flash'"):
        attention_core.attend(q, q, q, scale=1.0, impl="flash")
    with pytest.raises(ValueError, match=r"\(B, L, H, D\)"):
        attention_core.attend(q[0], q[0], q[0], scale=1.0)


# The base model's largest spatial attention: 40×64 = 2560 tokens per frame, 8 heads of 40.
_TOKENS, _HEADS, _HEAD_DIM = 2560, 8, 40
_FULL_SCORES_BYTES = 1 * _HEADS * _TOKENS * _TOKENS * 4  # one fp32 (B, H, L, L) matrix: 210 MB


def _temp_bytes(fn) -> int:
    spec = jax.ShapeDtypeStruct((1, _TOKENS, _HEADS, _HEAD_DIM), jnp.float32)
    return jax.jit(fn).lower(spec, spec, spec).compile().memory_analysis().temp_size_in_bytes


def test_chunked_never_holds_a_full_score_matrix():
    scale = _HEAD_DIM**-0.5

    def attend(impl, **chunks):
        return lambda q, k, v: attention_core.attend(q, k, v, scale=scale, impl=impl, **chunks)

    # The measurement is meaningful: the plain implementation does materialise the scores.
    assert _temp_bytes(attend("xla")) > _FULL_SCORES_BYTES
    assert _temp_bytes(attend("chunked")) < _FULL_SCORES_BYTES  # default chunks 1024 / 4096
    small = dict(query_chunk=256, key_chunk=1024)
    assert _temp_bytes(attend("chunked", **small)) < _FULL_SCORES_BYTES / 4

    # Training: the per-query-chunk remat keeps the backward pass below one score matrix too.
    def grad_of(impl, **chunks):
        fn = attend(impl, **chunks)
        return jax.grad(lambda q, k, v: jnp.sum(fn(q, k, v)), argnums=(0, 1, 2))

    assert _temp_bytes(grad_of("chunked", **small)) < _FULL_SCORES_BYTES
