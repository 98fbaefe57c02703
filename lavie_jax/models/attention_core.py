"""Scaled dot-product attention with interchangeable implementations.

``attend(q, k, v, bias, scale=..., impl=...)`` with q ``(B, Lq, H, D)``, k/v ``(B, Lk, H, D)`` and an
optional additive bias broadcastable to ``(B, H, Lq, Lk)``:

* ``"xla"``     — ``jax.nn.dot_product_attention`` (XLA): materialises the whole score matrix.
* ``"chunked"`` — memory-efficient, pure JAX (Rabe & Staats 2021, "Self-attention does not need O(n²)
  memory"): the (batch·head) pairs in groups and the queries in chunks (one sequential ``lax.map``),
  keys in chunks with an online softmax (``lax.scan``), so at most one ``(group, query_chunk,
  key_chunk)`` block of scores is alive. Needed for 2560-token spatial attention on CPU (one full fp32
  score matrix of the base model is 6.7 GB) — and faster than the XLA path there, because the small
  blocks stay in cache (3× on 32×4 heads × 1024 tokens here).
* ``"cudnn"``   — the cuDNN fused kernel on NVIDIA GPUs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

IMPLEMENTATIONS = ("xla", "chunked", "cudnn")
# Bytes of one fp32 block of scores in the chunked path; the group and query chunk derive from it.
SCORE_BLOCK_BYTES = 64 * 2**20
_MASKED = -1e30  # large finite negative: exp() of it is exactly 0 and max() never yields NaN


def attend(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    bias: jax.Array | None = None,
    *,
    scale: float,
    impl: str = "xla",
    query_chunk: int | None = None,
    key_chunk: int = 4096,
) -> jax.Array:
    """Attention over ``(B, L, H, D)`` arrays; returns ``(B, Lq, H, D)``.

    ``query_chunk=None`` (chunked path) fits the block of scores in `SCORE_BLOCK_BYTES`.
    """
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ValueError(f"attend: q, k, v must be (B, L, H, D), got {q.shape}, {k.shape}, {v.shape}")
    if bias is not None:
        bias = jnp.broadcast_to(bias, (q.shape[0], q.shape[2], q.shape[1], k.shape[1]))  # (B, H, Lq, Lk)
    if impl == "xla":
        return jax.nn.dot_product_attention(q, k, v, bias=bias, scale=scale, implementation="xla")
    if impl == "cudnn":
        return jax.nn.dot_product_attention(q, k, v, bias=bias, scale=scale, implementation="cudnn")
    if impl == "chunked":
        return chunked_attention(q, k, v, bias, scale=scale, query_chunk=query_chunk, key_chunk=key_chunk)
    raise ValueError(f"attend: impl={impl!r}; expected one of {IMPLEMENTATIONS}")


def _pad_to(x: jax.Array, axis: int, multiple: int) -> jax.Array:
    extra = -x.shape[axis] % multiple
    if not extra:
        return x
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, extra)
    return jnp.pad(x, widths)


def block_sizes(pairs: int, lq: int, lk: int, query_chunk: int | None, budget: int = SCORE_BLOCK_BYTES):
    """``(group, query_chunk)``: the query chunk (given, or all queries if one pair's scores fit, else
    the largest power of two that does), then as many (batch·head) pairs as fit beside it."""
    if query_chunk is None:
        rows = max(budget // (lk * 4), 1)
        query_chunk = lq if rows >= lq else max(2 ** (rows.bit_length() - 1), 16)
    query_chunk = min(query_chunk, lq)
    group = max(min(budget // (query_chunk * lk * 4), pairs), 1)
    return group, query_chunk


def chunked_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    bias: jax.Array | None,
    *,
    scale: float,
    query_chunk: int | None,
    key_chunk: int,
) -> jax.Array:
    b, lq, h, d = q.shape
    lk = k.shape[1]
    kc = min(key_chunk, lk)
    g, qc = block_sizes(b * h, lq, kc, query_chunk)
    pairs = lambda x: x.transpose(0, 2, 1, 3).reshape(b * h, x.shape[1], d)  # (B·H, L, D)
    qp = _pad_to(_pad_to(pairs(q * scale), 0, g), 1, qc)  # (P, Lq', D), scaled once
    kp = _pad_to(_pad_to(pairs(k), 0, g), 1, kc)  # (P, Lk', D)
    vp = _pad_to(_pad_to(pairs(v), 0, g), 1, kc)
    p_total, nq, nk = qp.shape[0], qp.shape[1] // qc, kp.shape[1] // kc
    key_valid = (jnp.arange(nk * kc) < lk).reshape(nk, kc)  # padded keys get zero weight
    if bias is not None:
        bias = bias.reshape(b * h, lq, lk)  # (B·H, Lq, Lk)
        bias = _pad_to(_pad_to(_pad_to(bias, 0, g), 1, qc), 2, kc)

    # Keys chunk-major for the scan: (nk, P, kc, D).
    k_chunks = kp.reshape(p_total, nk, kc, d).transpose(1, 0, 2, 3)
    v_chunks = vp.reshape(p_total, nk, kc, d).transpose(1, 0, 2, 3)

    def one_block(index):
        ig, iq = index // nq, index % nq  # which group of pairs, which query chunk
        qi = jax.lax.dynamic_slice(qp, (ig * g, iq * qc, 0), (g, qc, d))  # (g, qc, D)

        def scores(kj, valid, jk):  # (g, qc, kc) for one key chunk, padded keys masked
            s = jnp.einsum("gqd,gkd->gqk", qi, kj, preferred_element_type=jnp.float32)
            if bias is not None:
                s = s + jax.lax.dynamic_slice(bias, (ig * g, iq * qc, jk * kc), (g, qc, kc))
            return jnp.where(valid[None, None, :], s, _MASKED)

        def chunk(x, j):  # this group's slice of key/value chunk j: (g, kc, D)
            return jax.lax.dynamic_slice_in_dim(x[j], ig * g, g)

        if nk == 1:  # all keys in one chunk: a plain softmax, no running max or rescaling
            p = jax.nn.softmax(scores(chunk(k_chunks, 0), key_valid[0], 0), axis=-1)
            vj = chunk(v_chunks, 0)
            return jnp.einsum("gqk,gkd->gqd", p.astype(vj.dtype), vj).astype(q.dtype)

        def over_keys(carry, jk):
            m, l, acc = carry  # (g, qc), (g, qc), (g, qc, D)
            s = scores(chunk(k_chunks, jk), key_valid[jk], jk)
            m_new = jnp.maximum(m, s.max(-1))
            p = jnp.exp(s - m_new[..., None])
            correction = jnp.exp(m - m_new)  # rescales what was accumulated under the old max
            l = l * correction + p.sum(-1)
            vj = chunk(v_chunks, jk)
            pv = jnp.einsum("gqk,gkd->gqd", p.astype(vj.dtype), vj, preferred_element_type=jnp.float32)
            return (m_new, l, acc * correction[..., None] + pv), None

        init = (
            jnp.full((g, qc), _MASKED, jnp.float32),
            jnp.zeros((g, qc), jnp.float32),
            jnp.zeros((g, qc, d), jnp.float32),
        )
        (_, l, acc), _ = jax.lax.scan(over_keys, init, jnp.arange(nk))
        return (acc / l[..., None]).astype(q.dtype)  # (g, qc, D)

    # Remat per block: the backward pass recomputes one block's scores instead of storing them all.
    blocks = jax.lax.map(jax.checkpoint(one_block), jnp.arange((p_total // g) * nq))  # (G·nq, g, qc, D)
    out = blocks.reshape(p_total // g, nq, g, qc, d).transpose(0, 2, 1, 3, 4).reshape(p_total, nq * qc, d)
    out = out[: b * h, :lq].reshape(b, h, lq, d)  # (B, H, Lq, D)
    return out.transpose(0, 2, 1, 3)  # (B, Lq, H, D)
