"""The base UNet3D: F = 1 equals diffusers' UNet2DConditionModel with temporal layers zeroed; F > 1 with
every temporal layer on equals a float64 torch reference written here from the spec; joint
image-video input; bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from diffusers import UNet2DConditionModel
from flax import nnx
from unet_reference import Reference

from lavie_jax.convert import state
from lavie_jax.convert import unet as convert_unet
from lavie_jax.models import unet3d

DIFFUSERS_CONFIG = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    block_out_channels=(32, 64),
    layers_per_block=2,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=16,
    attention_head_dim=1,  # = one head: head dims 32 and 64, so RoPE-32 rotates all / half of a head
    norm_num_groups=8,
)


def perturbed(module, scale=0.05):
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))
    return module


@pytest.fixture(scope="module")
def sd2d():
    return perturbed(UNet2DConditionModel(**DIFFUSERS_CONFIG).eval())


def lavie_state_dict(sd2d):
    """SD's 2-D weights + random temporal layers with LaVie's key names (spec §6)."""
    gen = torch.Generator().manual_seed(1)
    sd = {k: v.clone() for k, v in sd2d.state_dict().items()}
    for key in [k for k in sd if k.endswith("transformer_blocks.0.attn1.to_q.weight")]:
        prefix = key.removesuffix("attn1.to_q.weight")
        c = sd[key].shape[0]
        rnd = lambda *s: 0.2 * torch.randn(*s, generator=gen)
        for name in ("to_q", "to_k", "to_v"):
            sd[f"{prefix}attn_temp.{name}.weight"] = rnd(c, c)
        sd[f"{prefix}attn_temp.to_out.0.weight"] = rnd(c, c)
        sd[f"{prefix}attn_temp.to_out.0.bias"] = rnd(c)
        sd[f"{prefix}attn_temp.time_rel_pos_bias.relative_attention_bias.weight"] = rnd(32, 1)
        sd[f"{prefix}attn_temp.rotary_emb.freqs"] = 1.0 / 10000 ** (torch.arange(0, 32, 2).float() / 32)
        sd[f"{prefix}norm_temp.weight"] = 1 + rnd(c)
        sd[f"{prefix}norm_temp.bias"] = rnd(c)
    return sd


def our_config(**overrides):
    return unet3d.UNet3DConfig.from_diffusers_dict(DIFFUSERS_CONFIG, **overrides)


# --------------------------------------------------------------------------- F = 1 vs diffusers
def test_single_frame_equals_diffusers_2d_unet(sd2d):
    ours = convert_unet.load_unet_from_torch(sd2d.state_dict(), our_config(), inflate_temporal=True)
    flat = state.flat_params(ours)
    zero_out = [k for k in flat if ".attn_temp.to_out." in k]
    assert zero_out and all(float(jnp.abs(flat[k]).max()) == 0 for k in zero_out)  # weight and bias
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 8, 8)).astype(np.float32)
    ctx = rng.standard_normal((2, 7, 16)).astype(np.float32)
    t = np.array([10, 800])
    with torch.no_grad():
        want = sd2d(torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(ctx)).sample.numpy()
    got = ours(
        jnp.asarray(x.transpose(0, 2, 3, 1)[:, None]), jnp.asarray(t), jnp.asarray(ctx)
    )  # (B, 1, H, W, C)
    assert np.abs(np.asarray(got[:, 0]) - want.transpose(0, 2, 3, 1)).max() <= 1e-4


# --------------------------------------------------------------------------- float64 reference
@pytest.mark.parametrize("frames", [5])
def test_video_forward_equals_float64_reference(sd2d, frames):
    sd = lavie_state_dict(sd2d)
    ours = convert_unet.load_unet_from_torch(sd, our_config())
    rng = np.random.default_rng(frames)
    x = rng.standard_normal((2, 4, frames, 8, 8))
    ctx = rng.standard_normal((2, 7, 16))
    t = np.array([3, 640])
    want = Reference(sd)(torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(ctx)).numpy()
    got = ours(
        jnp.asarray(x.transpose(0, 2, 3, 4, 1), jnp.float32), jnp.asarray(t), jnp.asarray(ctx, jnp.float32)
    )
    assert np.abs(np.asarray(got) - want.transpose(0, 2, 3, 4, 1)).max() <= 1e-4


# --------------------------------------------------------------------------- joint image-video input
def test_images_bypass_temporal_layers_and_clip_statistics(sd2d):
    ours = convert_unet.load_unet_from_torch(lavie_state_dict(sd2d), our_config())
    rng = np.random.default_rng(7)
    video = jnp.asarray(rng.standard_normal((1, 4, 8, 8, 4)), jnp.float32)
    images = jnp.asarray(rng.standard_normal((1, 2, 8, 8, 4)), jnp.float32)
    video_ctx = jnp.asarray(rng.standard_normal((1, 7, 16)), jnp.float32)
    image_ctx = jnp.asarray(rng.standard_normal((1, 2, 7, 16)), jnp.float32)
    t = jnp.asarray([500])
    joint_ctx = jnp.concatenate([jnp.broadcast_to(video_ctx[:, None], (1, 4, 7, 16)), image_ctx], axis=1)
    run = jax.jit(lambda x, c, m: ours(x, t, c, num_image_frames=m), static_argnums=2)
    joint = run(jnp.concatenate([video, images], axis=1), joint_ctx, 2)
    # Bitwise, same program: new image content / captions leave the video frames untouched, and new
    # video content leaves the image frames untouched.
    other = run(jnp.concatenate([video, -images], axis=1), joint_ctx.at[:, 4:].multiply(-1), 2)
    np.testing.assert_array_equal(np.asarray(other[:, :4]), np.asarray(joint[:, :4]))
    other = run(jnp.concatenate([2 * video, images], axis=1), joint_ctx.at[:, :4].multiply(-1), 2)
    np.testing.assert_array_equal(np.asarray(other[:, 4:]), np.asarray(joint[:, 4:]))
    # Against separate runs (a different program shape, so fp32 sums may be reassociated: ≤ 1e-5).
    alone = run(video, video_ctx, 0)
    assert np.abs(np.asarray(joint[:, :4]) - np.asarray(alone)).max() <= 1e-5
    for m in range(2):
        single = run(images[:, m : m + 1], image_ctx[:, m : m + 1], 1)  # one image, as an image
        assert np.abs(np.asarray(joint[:, 4 + m]) - np.asarray(single[:, 0])).max() <= 1e-5


# --------------------------------------------------------------------------- frame_time_embedding
class FrameTimeReference(Reference):
    """frame_time_embedding=True (not in LaVie): each video frame's time embedding gains
    ``frame_embedding([cos, sin](f · freqs))`` for its index f; the resnets add a per-frame bias."""

    def __call__(self, x, t, ctx, **kw):
        self.frames = x.shape[2]
        return super().__call__(x, t, ctx, **kw)

    def embed(self, t, class_labels):
        frame = self.linear("frame_embedding", self.sinusoid(torch.arange(self.frames)))  # (F, T)
        return super().embed(t, class_labels)[:, None] + frame[None]  # (B, F, T); resnets add per frame


def frame_embedding_state_dict(sd2d, scale):
    gen = torch.Generator().manual_seed(2)
    sd = lavie_state_dict(sd2d)
    temb, c0 = sd["time_embedding.linear_1.weight"].shape
    sd["frame_embedding.weight"] = scale * torch.randn(temb, c0, generator=gen)
    sd["frame_embedding.bias"] = scale * torch.randn(temb, generator=gen)
    return sd


def test_frame_time_embedding_equals_float64_reference(sd2d):
    sd = frame_embedding_state_dict(sd2d, 0.5)
    ours = convert_unet.load_unet_from_torch(sd, our_config(frame_time_embedding=True))
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 4, 5, 8, 8))
    ctx = rng.standard_normal((2, 7, 16))
    t = np.array([3, 640])
    want = FrameTimeReference(sd)(torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(ctx)).numpy()
    plain = Reference(sd)(torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(ctx)).numpy()
    assert np.abs(want - plain).max() > 0.05  # the frame embedding matters at this scale
    got = ours(
        jnp.asarray(x.transpose(0, 2, 3, 4, 1), jnp.float32), jnp.asarray(t), jnp.asarray(ctx, jnp.float32)
    )
    assert np.abs(np.asarray(got) - want.transpose(0, 2, 3, 4, 1)).max() <= 1e-4


def test_frame_time_embedding_starts_at_zero_and_skips_images(sd2d):
    config = our_config(frame_time_embedding=True)
    fresh = unet3d.UNet3D(config, rngs=nnx.Rngs(0))
    assert all(
        float(jnp.abs(v).max()) == 0 for k, v in state.flat_params(fresh).items() if "frame_embedding" in k
    )
    with_frames = convert_unet.load_unet_from_torch(frame_embedding_state_dict(sd2d, 0.5), config)
    without = convert_unet.load_unet_from_torch(frame_embedding_state_dict(sd2d, 0.0), config)
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.standard_normal((1, 6, 8, 8, 4)), jnp.float32)  # 4 video frames + 2 images
    ctx = jnp.asarray(rng.standard_normal((1, 7, 16)), jnp.float32)
    a = np.asarray(with_frames(x, jnp.asarray([500]), ctx, num_image_frames=2))
    b = np.asarray(without(x, jnp.asarray([500]), ctx, num_image_frames=2))
    assert np.abs(a[:, :4] - b[:, :4]).max() > 0.05  # video frames see their index
    np.testing.assert_allclose(a[:, 4:], b[:, 4:], atol=1e-6)  # images get none


# --------------------------------------------------------------------------- bad input
def test_bad_input_is_named(sd2d):
    ours = convert_unet.load_unet_from_torch(sd2d.state_dict(), our_config(), inflate_temporal=True)
    x, ctx, t = jnp.zeros((1, 2, 8, 8, 4)), jnp.zeros((1, 7, 16)), jnp.asarray([1])
    with pytest.raises(ValueError, match=r"sample must be \(B, F, H, W, 4\)"):
        ours(jnp.zeros((1, 8, 8, 4)), t, ctx)
    with pytest.raises(ValueError, match="H×W=5×8 must be multiples of 2"):
        ours(jnp.zeros((1, 2, 5, 8, 4)), t, ctx)
    with pytest.raises(ValueError, match="encoder_hidden_states must be"):
        ours(x, t, jnp.zeros((1, 7, 15)))
    with pytest.raises(ValueError, match="num_image_frames=3"):
        ours(x, t, ctx, num_image_frames=3)
    with pytest.raises(ValueError, match="low_res"):
        ours(x, t, ctx, low_res=jnp.zeros((1, 2, 8, 8, 3)))
    with pytest.raises(ValueError, match="unknown down_block_types"):
        unet3d.UNet3DConfig(
            down_block_types=("CrossAttnDownBlock3D", "Weird"),
            block_out_channels=(32, 64),
            up_block_types=("UpBlock3D", "UpBlock3D"),
        )
    with pytest.raises(ValueError, match="frame_time_embedding=True with temporal_modules=True"):
        unet3d.UNet3DConfig(frame_time_embedding=True, temporal_modules=True)
    with pytest.raises(ValueError, match="upcast_attention=True"):
        unet3d.UNet3DConfig.from_diffusers_dict({**DIFFUSERS_CONFIG, "upcast_attention": True})
    sd = dict(lavie_state_dict(sd2d))
    sd.pop("down_blocks.0.attentions.0.transformer_blocks.0.attn_temp.to_k.weight")
    with pytest.raises(state.StateMismatchError, match="attn_temp.to_k.kernel"):
        convert_unet.load_unet_from_torch(sd, our_config())
