"""The VSR UNet (spec §4): the temporal resnet, TemporalModule3D and a whole tiny model (low-res
input, noise-level embedding, cross-attention-only attn1, linear projections, temporal layers
everywhere) against float64 references written here from the spec, with random non-zero weights
everywhere; image frames bypass every temporal part; noise levels above 350 are refused."""

import jax
import jax.numpy as jnp
import lavie_weights
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from flax import nnx
from test_unet3d import perturbed
from unet_reference import Reference

from lavie_jax.convert import state
from lavie_jax.convert import unet as convert_unet
from lavie_jax.models import temporal_module, temporal_resblock, unet3d

# The SD ×4 upscaler's layout at tiny width: no attention at level 0, cross-attention-only attn1 at
# the narrower attention levels, self-attention at the widest level and in the mid block.
UPSCALER_2D = dict(
    sample_size=8,
    in_channels=7,
    out_channels=4,
    block_out_channels=(32, 32, 64),
    layers_per_block=2,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    only_cross_attention=(True, True, False),
    use_linear_projection=True,
    num_class_embeds=1000,
    cross_attention_dim=16,
    attention_head_dim=1,
    norm_num_groups=8,
)
VSR_OPTIONS = dict(
    low_res_channels=3, max_noise_level=350, temporal="conv_rope_relpos", temporal_modules=True
)


def vsr_config():
    return unet3d.UNet3DConfig.from_diffusers_dict(UPSCALER_2D, **VSR_OPTIONS)


def load_into(module, torch_weights):
    state.assign(module, convert_unet.unet_flat_from_torch(torch_weights))
    return module


class VSRReference(Reference):
    """Spec §4: low-res concatenation, noise-level embedding, ResnetBlock3DCNN before every
    transformer norm, attn_temporal with RoPE + bias before the FF, TemporalModule3D after levels."""

    def conv3d(self, name, x):  # Conv3d with kernel (k, 1, 1), padding (k//2, 0, 0)
        weight = self.w[f"{name}.weight"]
        return F.conv3d(x, weight, self.w[f"{name}.bias"], padding=(weight.shape[2] // 2, 0, 0))

    def temporal_resnet(self, name, x, temb=None):
        h = self.conv3d(f"{name}.conv1", F.silu(self.gn(f"{name}.norm1", x, 1e-6)))
        if temb is not None:
            h = h + self.linear(f"{name}.time_emb_proj", F.silu(temb))[:, :, None, None, None]
        return x + self.conv3d(f"{name}.conv2", F.silu(self.gn(f"{name}.norm2", h, 1e-6)))

    def temporal_module(self, name, x, temb):
        h = self.temporal_resnet(f"{name}.resblocks_3d_t", x, temb)
        h = self.resnet(f"{name}.resblocks_3d_s", h, temb, eps=1e-6)
        return x + self.conv(f"{name}.shift_conv", h)

    def transformer_input(self, name, x):
        return self.temporal_resnet(f"{name}.resblock_temporal", x)

    def block(self, blk, y, ctx_f, b, f, cross_only):
        y = self.attn1(blk, self.ln(f"{blk}.norm1", y), ctx_f, b, f, cross_only) + y
        y = self.attention(f"{blk}.attn2", self.ln(f"{blk}.norm2", y), ctx_f) + y
        y = self.over_frames(
            lambda t: self.temporal_attention(f"{blk}.attn_temporal", self.ln(f"{blk}.norm_temporal", t)) + t,
            y,
            b,
            f,
        )
        return self.ff(blk, y)

    def after_level(self, name, h, temb):
        return self.temporal_module(name, h, temb)

    def embed(self, t, class_labels):
        return super().embed(t, class_labels) + self.w["class_embedding.weight"][class_labels]

    def conv_in_input(self, x, low_res):
        return torch.cat([x, low_res], dim=1)


def to_channels_last(x):  # (B, C, F, H, W) → (B, F, H, W, C)
    return jnp.asarray(x.transpose(0, 2, 3, 4, 1), jnp.float32)


# --------------------------------------------------------------------------- pieces
@pytest.mark.parametrize("kernel, temb", [(3, None), (5, 24)])
def test_temporal_resnet_equals_float64_reference(kernel, temb):
    c = 16
    weights = lavie_weights.random_torch_weights(
        lavie_weights.temporal_resblock_shapes("r", c, kernel, temb), seed=kernel
    )
    block = temporal_resblock.TemporalResnetBlock(c, kernel, temb_channels=temb, groups=4, rngs=nnx.Rngs(0))
    load_into(block, {k.removeprefix("r."): v for k, v in weights.items()})
    rng = np.random.default_rng(kernel)
    x = rng.standard_normal((2, c, 6, 3, 4))  # (B, C, F, H, W): F > kernel, so zero padding shows
    t = rng.standard_normal((2, temb)) if temb else None
    ref = VSRReference(weights, groups=4)
    want = ref.temporal_resnet("r", torch.from_numpy(x), None if t is None else torch.from_numpy(t)).numpy()
    got = block(to_channels_last(x), None if t is None else jnp.asarray(t, jnp.float32))
    assert np.abs(np.asarray(got) - want.transpose(0, 2, 3, 4, 1)).max() <= 1e-4


def test_temporal_module_equals_float64_reference_and_skips_images():
    c, temb = 16, 24
    weights = lavie_weights.random_torch_weights(lavie_weights.temporal_module_shapes("m", c, temb), seed=2)
    module = temporal_module.TemporalModule3D(c, temb, groups=4, rngs=nnx.Rngs(0))
    load_into(module, {k.removeprefix("m."): v for k, v in weights.items()})
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, c, 5, 4, 4))
    t = rng.standard_normal((2, temb))
    want = VSRReference(weights, groups=4).temporal_module("m", torch.from_numpy(x), torch.from_numpy(t))
    got = module(to_channels_last(x), jnp.asarray(t, jnp.float32))
    assert np.abs(np.asarray(got) - want.numpy().transpose(0, 2, 3, 4, 1)).max() <= 1e-4
    # Two image frames appended: they come out untouched, the video frames as without them.
    images = rng.standard_normal((2, c, 2, 4, 4))
    joint = module(
        to_channels_last(np.concatenate([x, images], 2)), jnp.asarray(t, jnp.float32), num_image_frames=2
    )
    np.testing.assert_array_equal(np.asarray(joint[:, 5:]), np.asarray(to_channels_last(images)))
    assert np.abs(np.asarray(joint[:, :5]) - np.asarray(got)).max() <= 1e-5


# --------------------------------------------------------------------------- whole UNet
@pytest.fixture(scope="module")
def vsr():
    torch.manual_seed(0)
    sd2d = perturbed(UNet2DConditionModel(**UPSCALER_2D))
    sd = lavie_weights.with_vsr_temporal(dict(sd2d.state_dict()), UPSCALER_2D["block_out_channels"], heads=1)
    return sd, convert_unet.load_unet_from_torch(sd, vsr_config())


def test_vsr_unet_equals_float64_reference(vsr):
    sd, ours = vsr
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 3, 8, 8))
    low_res = rng.standard_normal((2, 3, 3, 8, 8))
    ctx = rng.standard_normal((2, 7, 16))
    t, noise_level = np.array([3, 640]), np.array([50, 350])
    ref = VSRReference(
        {k: v for k, v in sd.items() if not k.endswith("freqs")},
        channels=UPSCALER_2D["block_out_channels"],
        cross_only=UPSCALER_2D["only_cross_attention"],
    )
    want = ref(*(torch.from_numpy(a) for a in (x, t, ctx, low_res, noise_level))).numpy()
    got = ours(
        to_channels_last(x),
        jnp.asarray(t),
        jnp.asarray(ctx, jnp.float32),
        low_res=to_channels_last(low_res),
        class_labels=jnp.asarray(noise_level),
    )
    assert np.abs(np.asarray(got) - want.transpose(0, 2, 3, 4, 1)).max() <= 1e-4


def test_vsr_images_bypass_temporal_parts(vsr):
    _, ours = vsr
    rng = np.random.default_rng(6)
    video, images = (jnp.asarray(rng.standard_normal((1, n, 8, 8, 4)), jnp.float32) for n in (3, 2))
    low_video, low_images = (jnp.asarray(rng.standard_normal((1, n, 8, 8, 3)), jnp.float32) for n in (3, 2))
    ctx = jnp.asarray(rng.standard_normal((1, 7, 16)), jnp.float32)
    t, level = jnp.asarray([300]), jnp.asarray([20])

    def run(x, low, m):
        return ours(x, t, ctx, low_res=low, class_labels=level, num_image_frames=m)

    run = jax.jit(run, static_argnums=2)
    joint = run(jnp.concatenate([video, images], 1), jnp.concatenate([low_video, low_images], 1), 2)
    assert np.abs(np.asarray(joint[:, :3]) - np.asarray(run(video, low_video, 0))).max() <= 1e-5
    for m in range(2):
        single = run(images[:, m : m + 1], low_images[:, m : m + 1], 1)  # one frame, all temporal parts off
        assert np.abs(np.asarray(joint[:, 3 + m]) - np.asarray(single[:, 0])).max() <= 1e-5


def test_vsr_input_checks(vsr):
    _, ours = vsr
    x, low, ctx, t = (
        jnp.zeros((1, 2, 8, 8, 4)),
        jnp.zeros((1, 2, 8, 8, 3)),
        jnp.zeros((1, 7, 16)),
        jnp.asarray([1]),
    )
    with pytest.raises(
        ValueError,
        match=r"noise level \(class_labels\) \[351\] out of range; expected 0..max_noise_level=350",
    ):
        ours(x, t, ctx, low_res=low, class_labels=jnp.asarray([351]))
    with pytest.raises(ValueError, match=r"low_res must be \(B, F, H, W, 3\)"):
        ours(x, t, ctx, class_labels=jnp.asarray([1]))
    with pytest.raises(ValueError, match="class_labels missing"):
        ours(x, t, ctx, low_res=low)
    with pytest.raises(ValueError, match=r"sample must be \(B, F, H, W, 4\)"):
        ours(jnp.zeros((1, 2, 8, 8, 7)), t, ctx, low_res=low, class_labels=jnp.asarray([1]))


def test_vsr_config_round_trips_and_validates():
    config = unet3d.lavie_vsr()
    assert unet3d.UNet3DConfig.from_dict(config.to_dict()) == config
    assert unet3d.UNet3DConfig.from_dict(vsr_config().to_dict()) == vsr_config()
    with pytest.raises(ValueError, match="low_res_channels=7; expected an int in 0..in_channels-1=6"):
        unet3d.UNet3DConfig(in_channels=7, low_res_channels=7)
    with pytest.raises(ValueError, match="max_noise_level=350; expected None or a level"):
        unet3d.UNet3DConfig(max_noise_level=350)
    with pytest.raises(ValueError, match="temporal_modules=1; expected True or False"):
        unet3d.UNet3DConfig(temporal_modules=1)
