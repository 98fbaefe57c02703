"""Scaled dot-product attention with interchangeable implementations.

``attend(q, k, v, bias, scale=..., impl=...)`` with q ``(B, Lq, H, D)``, k/v ``(B, Lk, H, D)`` and an
optional additive bias broadcastable to ``(B, H, Lq, Lk)``:

* ``"xla"``     — ``jax.nn.dot_product_attention`` (XLA): materialises the whole score matrix.
* ``"chunked"`` — memory-efficient, pure JAX (Rabe & Staats 2021, "Self-attention does not need O(n²)
  memory"): queries in chunks (sequential ``lax.map``), keys in chunks with an online softmax
  (``lax.scan``), so at most one ``(B, H, query_chunk, key_chunk)`` block of scores is alive. Needed
  for 2560-token spatial attention on CPU (one full fp32 score matrix of the base model is 6.7 GB).
* ``"cudnn"``   — the cuDNN fused kernel on NVIDIA GPUs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

IMPLEMENTATIONS = ("xla", "chunked", "cudnn")
# Default bytes for one fp32 block of scores in the chunked path; the query chunk is derived from it.
SCORE_BLOCK_BYTES = 128 * 2**20
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

    ``query_chunk=None`` picks the largest power of two (16..4096) whose score block
    ``(B, H, query_chunk, min(Lk, key_chunk))`` fits in `SCORE_BLOCK_BYTES`.
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
        if query_chunk is None:
            query_chunk = auto_query_chunk(q.shape[0], q.shape[2], min(k.shape[1], key_chunk))
        return chunked_attention(q, k, v, bias, scale=scale, query_chunk=query_chunk, key_chunk=key_chunk)
    raise ValueError(f"attend: impl={impl!r}; expected one of {IMPLEMENTATIONS}")


def auto_query_chunk(batch: int, heads: int, key_len: int, budget: int = SCORE_BLOCK_BYTES) -> int:
    rows = max(budget // (batch * heads * key_len * 4), 1)
    return int(min(max(2 ** (rows.bit_length() - 1), 16), 4096))


def _pad_to(x: jax.Array, axis: int, multiple: int) -> jax.Array:
    extra = -x.shape[axis] % multiple
    if not extra:
        return x
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, extra)
    return jnp.pad(x, widths)


def chunked_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    bias: jax.Array | None,
    *,
    scale: float,
    query_chunk: int,
    key_chunk: int,
) -> jax.Array:
    b, lq, h, d = q.shape
    lk = k.shape[1]
    qc, kc = min(query_chunk, lq), min(key_chunk, lk)
    qp, kp, vp = _pad_to(q, 1, qc), _pad_to(k, 1, kc), _pad_to(v, 1, kc)
    nq, nk = qp.shape[1] // qc, kp.shape[1] // kc
    key_valid = (jnp.arange(nk * kc) < lk).reshape(nk, kc)  # padded keys get zero weight
    if bias is not None:
        bias = _pad_to(_pad_to(bias, 2, qc), 3, kc)  # (B, H, Lq', Lk')

    # Chunk-major layouts so lax.map / lax.scan iterate over the leading axis.
    q_chunks = qp.reshape(b, nq, qc, h, d).transpose(1, 0, 2, 3, 4)  # (nq, B, qc, H, D)
    k_chunks = kp.reshape(b, nk, kc, h, d).transpose(1, 0, 2, 3, 4)  # (nk, B, kc, H, D)
    v_chunks = vp.reshape(b, nk, kc, h, d).transpose(1, 0, 2, 3, 4)  # (nk, B, kc, H, D)

    def one_query_chunk(args):
        qi, iq = args  # (B, qc, H, D), chunk index

        def over_keys(carry, xs):
            m, l, acc = carry  # (B, H, qc), (B, H, qc), (B, qc, H, D)
            kj, vj, valid, jk = xs
            s = jnp.einsum("bqhd,bkhd->bhqk", qi, kj, preferred_element_type=jnp.float32) * scale
            if bias is not None:
                s = s + jax.lax.dynamic_slice(bias, (0, 0, iq * qc, jk * kc), (b, h, qc, kc))
            s = jnp.where(valid[None, None, None, :], s, _MASKED)  # (B, H, qc, kc)
            m_new = jnp.maximum(m, s.max(-1))
            p = jnp.exp(s - m_new[..., None])
            correction = jnp.exp(m - m_new)  # rescales what was accumulated under the old max
            l = l * correction + p.sum(-1)
            pv = jnp.einsum("bhqk,bkhd->bqhd", p.astype(vj.dtype), vj, preferred_element_type=jnp.float32)
            acc = acc * correction.transpose(0, 2, 1)[..., None] + pv
            return (m_new, l, acc), None

        init = (
            jnp.full((b, h, qc), _MASKED, jnp.float32),
            jnp.zeros((b, h, qc), jnp.float32),
            jnp.zeros((b, qc, h, d), jnp.float32),
        )
        (_, l, acc), _ = jax.lax.scan(over_keys, init, (k_chunks, v_chunks, key_valid, jnp.arange(nk)))
        return (acc / l.transpose(0, 2, 1)[..., None]).astype(q.dtype)  # (B, qc, H, D)

    # Remat per query chunk: the backward pass recomputes one chunk's scores instead of storing all.
    out = jax.lax.map(jax.checkpoint(one_query_chunk), (q_chunks, jnp.arange(nq)))  # (nq, B, qc, H, D)
    out = out.transpose(1, 0, 2, 3, 4).reshape(b, nq * qc, h, d)  # (B, Lq', H, D)
    return out[:, :lq]
