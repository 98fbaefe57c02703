"""Our NNX AutoencoderKL vs diffusers' AutoencoderKL (tiny random weights; SD and ×4-upscaler shapes).

Every weight is perturbed (diffusers initialises GroupNorms to identity) so a wrong mapping fails.
The SD-shaped model uses XLA attention, the ×4-shaped one the chunked implementation; both are
compared with diffusers on the same images. All forwards run under ``jax.jit``.
"""

import dataclasses
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL
from flax import nnx

from lavie_jax.convert import state
from lavie_jax.convert import vae as convert_vae
from lavie_jax.models import attention, vae

# Same structure as the real ones at tiny width: SD 1.x has 4 levels (×8), the ×4 upscaler 3 (×4).
SD_LIKE = dict(
    block_out_channels=(16, 32, 32, 32), layers_per_block=2, norm_num_groups=8, scaling_factor=0.18215
)
X4_LIKE = dict(
    block_out_channels=(16, 32, 32), layers_per_block=1, norm_num_groups=16, scaling_factor=0.08333
)
IMPLS = {"sd": "xla", "x4": "chunked"}
B, F, H, W = 2, 5, 32, 24  # 10 frames, H ≠ W so a swapped axis shows
FRAME_BATCH = 4  # 10 frames → groups of 4, 4, 2 (+2 padding)


def reference(cfg: dict) -> AutoencoderKL:
    torch.manual_seed(0)
    n = len(cfg["block_out_channels"])
    model = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n, **cfg
    ).eval()
    with torch.no_grad():  # every parameter moves, GroupNorm scales/biases included
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def jit_method(model: nnx.Module, name: str, **kwargs):
    graphdef, params = nnx.split(model)
    fn = jax.jit(lambda p, x: getattr(nnx.merge(graphdef, p), name)(x, **kwargs))
    return lambda x: fn(params, jnp.asarray(x))


def nchw(x: np.ndarray) -> torch.Tensor:  # (N, H, W, C) → (N, C, H, W)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def nhwc(t: torch.Tensor) -> np.ndarray:  # (N, C, H, W) → (N, H, W, C)
    return t.numpy().transpose(0, 2, 3, 1)


@pytest.fixture(scope="module", params=["sd", "x4"])
def case(request):
    cfg = SD_LIKE if request.param == "sd" else X4_LIKE
    ref = reference(cfg)
    config = dataclasses.replace(
        vae.VAEConfig.from_diffusers_dict(dict(ref.config)), attention_impl=IMPLS[request.param]
    )
    ours = convert_vae.load_vae_from_torch(ref.state_dict(), config)
    f = config.downsample_factor
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (B * F, H, W, 3)).astype(np.float32)
    z = rng.standard_normal((B * F, H // f, W // f, 4)).astype(np.float32)
    posterior = jit_method(ours, "encode")(x)
    decoded = jit_method(ours, "decode")(z)
    return types.SimpleNamespace(ref=ref, ours=ours, x=x, z=z, posterior=posterior, decoded=decoded)


def test_encode_matches_diffusers(case):
    with torch.no_grad():
        dist = case.ref.encode(nchw(case.x)).latent_dist
    assert np.abs(np.asarray(case.posterior.mean) - nhwc(dist.mean)).max() <= 1e-4
    assert np.abs(np.asarray(case.posterior.logvar) - nhwc(dist.logvar)).max() <= 1e-4


def test_decode_matches_diffusers(case):
    with torch.no_grad():
        want = nhwc(case.ref.decode(nchw(case.z)).sample)
    assert np.abs(want).max() > 0.1  # a meaningful output, not a collapsed one
    assert np.abs(np.asarray(case.decoded) - want).max() <= 1e-4


def test_video_frame_batching_equals_per_frame(case):
    """(B, F) = (2, 5) in groups of 4 (the last one padded) equals encoding/decoding each frame."""
    f = case.ours.config.downsample_factor
    post = jit_method(case.ours, "encode_video", frame_batch=FRAME_BATCH)(case.x.reshape(B, F, H, W, 3))
    assert post.mean.shape == (B, F, H // f, W // f, 4)
    for got, want in ((post.mean, case.posterior.mean), (post.logvar, case.posterior.logvar)):
        np.testing.assert_allclose(np.asarray(got).reshape(want.shape), want, atol=1e-5)
    video = jit_method(case.ours, "decode_video", frame_batch=FRAME_BATCH)(
        case.z.reshape(B, F, *case.z.shape[1:])
    )
    assert video.shape == (B, F, H, W, 3)
    np.testing.assert_allclose(np.asarray(video).reshape(case.decoded.shape), case.decoded, atol=1e-5)


@pytest.mark.parametrize("frames,frame_batch", [(5, 2), (3, 8), (4, 1), (6, 3)])
def test_map_frames_groups(frames, frame_batch):
    """Grouping, padding and unbatching are exact for any F (also F·B < frame_batch), pytree outputs."""
    x = jnp.asarray(np.random.default_rng(1).standard_normal((2, frames, 4, 6, 3)), jnp.float32)
    fn = lambda g: vae.DiagonalGaussian(g[:, ::2, ::2] * 2.0, g.sum(axis=(1, 2)))  # noqa: E731
    got = jax.jit(lambda v: vae._map_frames(fn, v, frame_batch))(x)
    want = fn(x.reshape(-1, 4, 6, 3))
    np.testing.assert_array_equal(got.mean, want.mean.reshape(2, frames, 2, 3, 3))
    np.testing.assert_allclose(got.logvar, want.logvar.reshape(2, frames, 3), rtol=1e-6)  # sums: ulps


def test_old_attention_names_and_conv_shaped_weights_load_identically(case):
    renamed = {}
    for key, value in case.ref.state_dict().items():
        original = key
        for new_name, old_name in (
            ("to_q", "query"),
            ("to_k", "key"),
            ("to_v", "value"),
            ("to_out.0", "proj_attn"),
        ):
            key = key.replace(f".attentions.0.{new_name}.", f".attentions.0.{old_name}.")
        if key != original:  # the renamed attention projections, stored as 1×1 convs as in some files
            value = value[:, :, None, None] if value.ndim == 2 else value
        renamed[key] = value
    assert any(".query." in k for k in renamed) and any(".proj_attn." in k for k in renamed)
    assert not any(".to_q." in k for k in renamed)
    loaded = state.flat_params(convert_vae.load_vae_from_torch(renamed, case.ours.config))
    want = state.flat_params(case.ours)
    assert set(loaded) == set(want)
    for name, value in want.items():
        np.testing.assert_array_equal(loaded[name], value)


def test_parameter_paths_mirror_diffusers(case):
    names = set(state.flat_params(case.ours))
    n = len(case.ours.config.block_out_channels)
    lpb = case.ours.config.layers_per_block
    for expected in (
        "encoder.conv_in.kernel",
        f"encoder.down_blocks.0.resnets.{lpb - 1}.conv2.kernel",
        "encoder.down_blocks.0.downsamplers.0.conv.kernel",
        "encoder.mid_block.resnets.1.norm2.scale",
        "encoder.mid_block.attentions.0.group_norm.scale",
        "encoder.mid_block.attentions.0.to_out.0.kernel",
        "encoder.conv_norm_out.bias",
        "quant_conv.kernel",
        "post_quant_conv.bias",
        f"decoder.up_blocks.0.resnets.{lpb}.conv1.kernel",
        f"decoder.up_blocks.{n - 2}.upsamplers.0.conv.kernel",
        "decoder.mid_block.attentions.0.to_v.bias",
    ):
        assert expected in names
    assert not any(
        f"up_blocks.{n - 1}.upsamplers" in k or f"down_blocks.{n - 1}.downsamplers" in k for k in names
    )


def test_posterior_sample_and_latent_scaling(case):
    post, key = case.posterior, jax.random.key(3)
    eps = jax.random.normal(key, post.mean.shape)
    np.testing.assert_allclose(post.sample(key), post.mean + jnp.exp(0.5 * post.logvar) * eps, rtol=1e-6)
    assert not np.allclose(post.sample(jax.random.key(4)), post.sample(key))
    assert post.mode() is post.mean
    s = case.ours.config.scaling_factor
    np.testing.assert_allclose(case.ours.scale_latents(post.mean), post.mean * s, rtol=1e-6)
    np.testing.assert_allclose(case.ours.unscale_latents(post.mean * s), post.mean, rtol=1e-5)


def test_set_impl_reaches_the_mid_attentions():
    model = nnx.eval_shape(lambda: vae.AutoencoderKL(vae.VAEConfig(**X4_LIKE), rngs=nnx.Rngs(0)))
    assert attention.set_impl(model, "chunked") == 2  # encoder and decoder mid blocks
    assert model.decoder.mid_block.attentions[0].impl == "chunked"


def test_config_round_trips_and_diffusers_defaults(tmp_path, case):
    config = case.ours.config
    assert vae.VAEConfig.from_dict(config.to_dict()) == config
    vae.save_vae(tmp_path / "vae", case.ours)
    loaded = vae.load_vae(tmp_path / "vae")
    assert loaded.config == config
    assert set(state.flat_params(loaded)) == set(state.flat_params(case.ours))
    # Fields a diffusers config.json leaves out take diffusers' defaults, not ours.
    assert vae.VAEConfig.from_diffusers_dict({}) == vae.VAEConfig(
        block_out_channels=(64,), layers_per_block=1
    )
    # Absent block types mean the standard ones at every level (SD configs written by hand omit them).
    assert vae.VAEConfig.from_diffusers_dict({"block_out_channels": [8, 16, 16]}).downsample_factor == 4


def test_bad_inputs_raise(case):
    ours, f = case.ours, case.ours.config.downsample_factor
    with pytest.raises(ValueError, match=f"H×W={H + 2}×{W}.*multiples of the VAE's downsampling factor {f}"):
        ours.encode(jnp.zeros((1, H + 2, W, 3)))
    with pytest.raises(ValueError, match=f"encode_video: image size H×W={H}×{W + f // 2}"):
        ours.encode_video(jnp.zeros((1, 2, H, W + f // 2, 3)))
    with pytest.raises(ValueError, match=r"encode: x must be \(N, H, W, 3\), got shape \(1, 16, 16\)"):
        ours.encode(jnp.zeros((1, 16, 16)))
    with pytest.raises(ValueError, match=r"decode_video: z must be \(B, F, h, w, 4\)"):
        ours.decode_video(jnp.zeros((1, 2, 2, 4)))
    with pytest.raises(ValueError, match=r"decode: z must be \(N, h, w, 4\), got shape \(1, 2, 2, 3\)"):
        ours.decode(jnp.zeros((1, 2, 2, 3)))
    with pytest.raises(ValueError, match="frame_batch=0"):
        ours.decode_video(jnp.zeros((1, 2, 2, 2, 4)), frame_batch=0)


def test_bad_state_dicts_list_every_offending_key(case):
    sd = dict(case.ref.state_dict())
    sd["encoder.conv_in.weight"] = sd["encoder.conv_in.weight"][:, :2]
    sd["decoder.extra.weight"] = torch.zeros(1, 1, 1, 1)
    del sd["decoder.conv_out.bias"]
    with pytest.raises(state.StateMismatchError) as err:
        convert_vae.load_vae_from_torch(sd, case.ours.config)
    message = str(err.value)
    for line in (
        "1 missing:",
        "decoder.conv_out.bias",
        "1 unexpected:",
        "decoder.extra.kernel",
        "1 mis-shaped:",
    ):
        assert line in message
    assert "encoder.conv_in.kernel: got (3, 3, 2, 16), expected (3, 3, 3, 16)" in message
    sd = dict(case.ref.state_dict())
    sd["encoder.mid_block.attentions.0.to_q.weight"] = torch.zeros(32, 32, 3, 3)
    with pytest.raises(ValueError, match="encoder.mid_block.attentions.0.to_q.weight"):
        convert_vae.vae_flat_from_torch(sd)


@pytest.mark.parametrize(
    "option,match",
    [
        ({"act_fn": "gelu"}, "act_fn='gelu' is not supported"),
        ({"_class_name": "AutoencoderKLTemporalDecoder"}, "_class_name='AutoencoderKLTemporalDecoder'"),
        ({"shift_factor": 0.1159}, "shift_factor=0.1159"),
        ({"mid_block_add_attention": False}, "mid_block_add_attention=False"),
        ({"down_block_types": ["DownEncoderBlock2D", "AttnDownEncoderBlock2D"]}, "down_block_types="),
        ({"up_block_types": ["UpDecoderBlock2D"]}, r"up_block_types=.*expected 2×"),
        ({"use_tiling_magic": True}, r"unknown option\(s\) \['use_tiling_magic'\]"),
    ],
)
def test_unsupported_diffusers_options_raise(option, match):
    d = {"block_out_channels": [16, 32], "down_block_types": ["DownEncoderBlock2D"] * 2}
    d["up_block_types"] = ["UpDecoderBlock2D"] * 2
    with pytest.raises(ValueError, match=match):
        vae.VAEConfig.from_diffusers_dict({**d, **option})
    with pytest.raises(ValueError, match="attention_impl='flash'"):
        vae.VAEConfig(attention_impl="flash")
