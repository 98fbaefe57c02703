"""Temporal attention (spec §1.6): RoPE against rotary_embedding_torch, the T5 bucket table against the
spec's literal list, the whole layer against a float64 numpy reference written here from the spec, and
the permutation property of the position signals."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from rotary_embedding_torch import RotaryEmbedding

from lavie_jax.convert import state
from lavie_jax.models import positions, temporal_attention

# Spec §1.6: bucket of |n| = |i - j| for n = 0..28; 15 for every |n| ≥ 27 (max_distance 32 caps it).
BUCKETS_BY_DISTANCE = [0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 12, 12, 13, 13, 13, 14, 14]
BUCKETS_BY_DISTANCE += [14, 14, 15, 15]


def spec_bucket(i: int, j: int) -> int:
    """Query frame i, key frame j; +16 when the key comes after the query (n = i - j < 0)."""
    distance = abs(i - j)
    bucket = BUCKETS_BY_DISTANCE[distance] if distance < len(BUCKETS_BY_DISTANCE) else 15
    return bucket + (16 if j > i else 0)


# ---------------------------------------------------------------------------------------------- RoPE


def test_rope_frequencies_match_library():
    library = RotaryEmbedding(dim=32).freqs.detach().numpy()
    ours = positions.rope_frequencies(32)
    assert ours.dtype == np.float32 and ours.shape == (16,)
    np.testing.assert_allclose(ours, library, rtol=1e-6, atol=0)


@pytest.mark.parametrize("head_dim", [40, 64, 160])
@pytest.mark.parametrize("num_frames", [1, 7, 16, 61])
def test_apply_rope_matches_library(head_dim, num_frames):
    x = np.random.default_rng(head_dim + num_frames).normal(size=(2, num_frames, 3, head_dim))  # (N, F, H, D)
    x = x.astype(np.float32)
    # The library rotates (..., seq, dim): move frames next to the channels.
    t = torch.from_numpy(x.transpose(0, 2, 1, 3).copy())  # (N, H, F, D)
    library = RotaryEmbedding(dim=32).rotate_queries_or_keys(t).numpy().transpose(0, 2, 1, 3)  # (N, F, H, D)
    ours = np.asarray(positions.apply_rope(jnp.asarray(x), positions.rope_frequencies(32)))
    assert np.abs(ours - library).max() <= 1e-5
    np.testing.assert_array_equal(ours[..., 32:], x[..., 32:])  # channels past rotary_dim pass through
    if num_frames > 1:
        assert np.abs(ours[:, 1:, :, :32] - x[:, 1:, :, :32]).max() > 1e-2  # and the rest did rotate


def test_apply_rope_rejects_small_head_dim():
    with pytest.raises(ValueError, match="head dim 24"):
        positions.apply_rope(jnp.zeros((1, 4, 2, 24)), positions.rope_frequencies(32))


# ----------------------------------------------------------------------------- relative-position bias


@pytest.mark.parametrize("num_frames", [1, 6, 16, 40])
def test_bucket_table_matches_spec(num_frames):
    expected = np.array([[spec_bucket(i, j) for j in range(num_frames)] for i in range(num_frames)])
    table = positions.relative_position_buckets(num_frames, num_buckets=32, max_distance=32)
    assert table.shape == (num_frames, num_frames) and np.issubdtype(table.dtype, np.integer)
    np.testing.assert_array_equal(table, expected)


def test_relative_position_bias_looks_up_buckets():
    heads, num_frames = 3, 12
    bias_module = positions.RelativePositionBias(heads, rngs=nnx.Rngs(0))
    assert set(state.flat_params(bias_module)) == {"relative_attention_bias.embedding"}
    table = np.random.default_rng(1).normal(size=(32, heads)).astype(np.float32)
    state.assign(bias_module, {"relative_attention_bias.embedding": table})
    bias = np.asarray(bias_module(num_frames))
    expected = np.array(
        [
            [[table[spec_bucket(i, j), h] for j in range(num_frames)] for i in range(num_frames)]
            for h in range(heads)
        ]
    )
    np.testing.assert_array_equal(bias, expected)  # (heads, F, F)


# ------------------------------------------------------------------------------ float64 reference


def reference_temporal_attention(x, params, heads, *, rotary_dim, relative_position):
    """The spec's equations in float64 numpy, independent of the code under test."""
    n, f, c = x.shape
    d = c // heads
    q = (x @ params["to_q.kernel"]) * d**-0.5  # the scale is applied before the rotation
    k = x @ params["to_k.kernel"]
    v = x @ params["to_v.kernel"]
    q, k, v = (a.reshape(n, f, heads, d) for a in (q, k, v))  # heads outermost in the channels
    if rotary_dim is not None:

        def rotate(a):
            out = a.copy()
            for m in range(rotary_dim // 2):  # the pair (2m, 2m+1) turns by pos · 10000^(-2m/R)
                angle = np.arange(f)[None, :, None] * 10000.0 ** (-2.0 * m / rotary_dim)
                even, odd = a[..., 2 * m], a[..., 2 * m + 1]
                out[..., 2 * m] = even * np.cos(angle) - odd * np.sin(angle)
                out[..., 2 * m + 1] = odd * np.cos(angle) + even * np.sin(angle)
            return out

        q, k = rotate(q), rotate(k)
    logits = np.einsum("nihd,njhd->nhij", q, k)
    if relative_position:
        table = params["time_rel_pos_bias.relative_attention_bias.embedding"]  # (32, heads)
        buckets = np.array([[spec_bucket(i, j) for j in range(f)] for i in range(f)])
        logits = logits + table[buckets].transpose(2, 0, 1)[None]  # (1, heads, F, F)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out = np.einsum("nhij,njhd->nihd", weights, v).reshape(n, f, c)
    return out @ params["to_out.0.kernel"] + params["to_out.0.bias"]


def randomize(module, seed):
    """Non-zero random weights everywhere (to_out and the bias table included), at unit-ish scale."""
    rng = np.random.default_rng(seed)
    flat = {}
    for name, value in state.flat_params(module).items():
        std = 1.0 if name.endswith("embedding") or name.endswith("bias") else 1.2 / np.sqrt(value.shape[0])
        flat[name] = rng.normal(size=value.shape) * std
    state.assign(module, flat)
    return {name: np.asarray(value, np.float64) for name, value in state.flat_params(module).items()}


LAYOUTS = [(80, 2), (320, 8), (256, 4)]  # head dims 40 (partial rotation), 40 with 8 heads, 64


@pytest.mark.parametrize("dim,heads", LAYOUTS)
@pytest.mark.parametrize("num_frames", [1, 6, 16])
@pytest.mark.parametrize("with_positions", [True, False], ids=["rope+bias", "plain"])
def test_matches_float64_reference(dim, heads, num_frames, with_positions):
    rotary_dim = 32 if with_positions else None
    model = temporal_attention.TemporalAttention(
        dim, heads, rotary_dim=rotary_dim, relative_position=with_positions, rngs=nnx.Rngs(0)
    )
    params = randomize(model, seed=dim + num_frames)
    x = np.random.default_rng(num_frames).normal(size=(4, num_frames, dim))  # (N, F, C)
    ours = np.asarray(model(jnp.asarray(x, jnp.float32)))
    expected = reference_temporal_attention(
        x, params, heads, rotary_dim=rotary_dim, relative_position=with_positions
    )
    assert ours.shape == x.shape
    assert np.abs(ours - expected).max() <= 1e-4


def test_parameter_paths():
    full = temporal_attention.TemporalAttention(320, 8, rngs=nnx.Rngs(0))
    shapes = {name: value.shape for name, value in state.flat_params(full).items()}
    assert shapes == {
        "to_q.kernel": (320, 320),
        "to_k.kernel": (320, 320),
        "to_v.kernel": (320, 320),
        "to_out.0.kernel": (320, 320),
        "to_out.0.bias": (320,),
        "time_rel_pos_bias.relative_attention_bias.embedding": (32, 8),
    }
    plain = temporal_attention.TemporalAttention(
        320, 8, rotary_dim=None, relative_position=False, rngs=nnx.Rngs(0)
    )
    assert set(state.flat_params(plain)) == set(shapes) - {
        "time_rel_pos_bias.relative_attention_bias.embedding"
    }


def test_rejects_head_dim_below_rotary_dim():
    with pytest.raises(ValueError, match="rotary_dim=32"):
        temporal_attention.TemporalAttention(48, 2, rngs=nnx.Rngs(0))  # head dim 24
    temporal_attention.TemporalAttention(48, 2, rotary_dim=None, rngs=nnx.Rngs(0))  # fine without RoPE


# ------------------------------------------------------------------------------------- properties


@pytest.mark.parametrize(
    "rotary_dim,relative_position,equivariant",
    [(None, False, True), (32, True, False), (32, False, False), (None, True, False)],
    ids=["plain", "rope+bias", "rope", "bias"],
)
def test_frame_permutation(rotary_dim, relative_position, equivariant):
    """Without position signals, permuting frames permutes the output; each signal breaks that."""
    model = temporal_attention.TemporalAttention(
        80, 2, rotary_dim=rotary_dim, relative_position=relative_position, rngs=nnx.Rngs(0)
    )
    randomize(model, seed=3)
    x = jnp.asarray(np.random.default_rng(4).normal(size=(3, 8, 80)), jnp.float32)  # (N, F, C)
    perm = np.array([5, 2, 7, 0, 1, 6, 4, 3])
    permuted_output = np.asarray(model(x))[:, perm]
    output_of_permuted = np.asarray(model(x[:, perm]))
    gap = np.abs(permuted_output - output_of_permuted).max()
    if equivariant:
        assert gap <= 1e-5
    else:
        assert gap > 1e-2


def test_xla_and_chunked_agree_under_jit():
    models = {
        impl: temporal_attention.TemporalAttention(320, 8, impl=impl, rngs=nnx.Rngs(0))
        for impl in ("xla", "chunked")
    }
    randomize(models["xla"], seed=5)
    nnx.update(models["chunked"], nnx.state(models["xla"]))
    x = jnp.asarray(np.random.default_rng(6).normal(size=(5, 16, 320)), jnp.float32)  # (N, F, C)

    def run(model):
        graphdef, params = nnx.split(model)
        return jax.jit(lambda p, x: nnx.merge(graphdef, p)(x))(params, x)

    np.testing.assert_allclose(np.asarray(run(models["chunked"])), np.asarray(run(models["xla"])), atol=1e-5)


def test_bfloat16_compute():
    """bf16 compute with fp32 parameters runs, keeps the dtype and stays near the fp32 result."""
    models = {
        dtype: temporal_attention.TemporalAttention(80, 2, rngs=nnx.Rngs(0), dtype=dtype)
        for dtype in (jnp.float32, jnp.bfloat16)
    }
    randomize(models[jnp.float32], seed=7)
    nnx.update(models[jnp.bfloat16], nnx.state(models[jnp.float32]))
    x = jnp.asarray(np.random.default_rng(8).normal(size=(3, 16, 80)), jnp.float32)  # (N, F, C)
    low = models[jnp.bfloat16](x.astype(jnp.bfloat16))
    assert low.dtype == jnp.bfloat16
    high = np.asarray(models[jnp.float32](x))
    assert np.abs(np.asarray(low, np.float32) - high).max() <= 0.05 * np.abs(high).max()


# ----------------------------------------------------------------- frame_position (not in LaVie)


@pytest.mark.parametrize("num_image_frames", [0, 2])
def test_frame_position_adds_frame_sinusoid_to_temporal_input(num_image_frames):
    """``frame_position=True``: x + attn_temp(LN(x) + PE[f]) on the video frames, PE[f] = [cos, sin] of
    f · 10000^(-i/(C/2)); the images (last frames) pass through untouched."""
    from lavie_jax.models import transformer

    batch, frames, hw, dim = 2, 6, 3, 64
    block = transformer.BasicTransformerBlock(dim, 2, 16, frame_position=True, rngs=nnx.Rngs(0))
    randomize(block.attn_temp, seed=5)
    attn = {name: np.asarray(v, np.float64) for name, v in state.flat_params(block.attn_temp).items()}
    norm = {name: np.asarray(v, np.float64) for name, v in state.flat_params(block.norm_temp).items()}
    x = np.random.default_rng(6).normal(size=(batch * frames, hw, dim))  # ((B·F), HW, C)
    ours = np.asarray(block.temporal_mix(jnp.asarray(x, jnp.float32), batch, num_image_frames))

    fv = frames - num_image_frames
    clip = x.reshape(batch, frames, hw, dim)
    video = clip[:, :fv].transpose(0, 2, 1, 3).reshape(batch * hw, fv, dim)  # ((B·HW), Fv, C)
    mean, var = video.mean(-1, keepdims=True), video.var(-1, keepdims=True)
    normed = (video - mean) / np.sqrt(var + 1e-5) * norm["scale"] + norm["bias"]
    angles = np.arange(fv)[:, None] * 10000.0 ** (-np.arange(dim // 2) / (dim // 2))  # (Fv, C/2)
    pe = np.concatenate([np.cos(angles), np.sin(angles)], axis=-1)  # (Fv, C)
    mixed = video + reference_temporal_attention(
        normed + pe[None], attn, 2, rotary_dim=32, relative_position=True
    )
    expected = clip.copy()
    expected[:, :fv] = mixed.reshape(batch, hw, fv, dim).transpose(0, 2, 1, 3)
    assert np.abs(ours - expected.reshape(x.shape)).max() <= 1e-4
    without = transformer.BasicTransformerBlock(dim, 2, 16, rngs=nnx.Rngs(0))
    state.assign(without, state.flat_params(block))
    plain = np.asarray(without.temporal_mix(jnp.asarray(x, jnp.float32), batch, num_image_frames))
    assert np.abs(plain - ours).max() > 1e-2  # the embedding changes the output


def test_frame_position_needs_temporal_layers():
    from lavie_jax.models import unet3d

    with pytest.raises(ValueError, match="frame_position=True with temporal=None"):
        unet3d.UNet3DConfig(temporal=None, frame_position=True)
