"""The base UNet3D: F = 1 equals diffusers' UNet2DConditionModel with temporal layers zeroed; F > 1 with
every temporal layer on equals a float64 torch reference written here from the spec; joint
image-video input; bad input."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel

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
class Reference:
    """LaVie's base UNet forward in float64 torch, written from spec §1–§2 (5-D ``(B, C, F, H, W)``)."""

    def __init__(self, sd, heads=1, groups=8, layers=2, channels=(32, 64)):
        self.w = {k: v.double() for k, v in sd.items()}
        self.heads, self.groups, self.layers, self.channels = heads, groups, layers, channels

    def conv(self, name, x, stride=1):  # InflatedConv3d: a 2-D conv on every frame
        b, c, f, h, w = x.shape
        weight = self.w[f"{name}.weight"]
        y = F.conv2d(
            x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w),
            weight,
            self.w[f"{name}.bias"],
            stride=stride,
            padding=weight.shape[-1] // 2,
        )
        return y.reshape(b, f, *y.shape[1:]).permute(0, 2, 1, 3, 4)

    def gn(self, name, x, eps):  # over the 5-D tensor: statistics span all frames
        return F.group_norm(x, self.groups, self.w[f"{name}.weight"], self.w[f"{name}.bias"], eps)

    def linear(self, name, x, bias=True):
        return F.linear(x, self.w[f"{name}.weight"], self.w.get(f"{name}.bias") if bias else None)

    def ln(self, name, x):
        return F.layer_norm(x, x.shape[-1:], self.w[f"{name}.weight"], self.w[f"{name}.bias"], 1e-5)

    def resnet(self, name, x, temb):
        h = self.conv(f"{name}.conv1", F.silu(self.gn(f"{name}.norm1", x, 1e-5)))
        h = h + self.linear(f"{name}.time_emb_proj", F.silu(temb))[:, :, None, None, None]
        h = self.conv(f"{name}.conv2", F.silu(self.gn(f"{name}.norm2", h, 1e-5)))
        shortcut = self.conv(f"{name}.conv_shortcut", x) if f"{name}.conv_shortcut.weight" in self.w else x
        return shortcut + h

    def attention(self, name, x, ctx):
        q, k, v = (
            self.linear(f"{name}.to_{n}", y, bias=False) for n, y in (("q", x), ("k", ctx), ("v", ctx))
        )
        split = lambda y: y.reshape(*y.shape[:2], self.heads, -1).transpose(1, 2)  # (N, heads, L, d)
        q, k, v = split(q), split(k), split(v)
        attn = torch.softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5, dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)
        return self.linear(f"{name}.to_out.0", out)

    @staticmethod
    def bucket(n):  # T5 bidirectional bucket of n = i − j, 32 buckets, max distance 32
        offset, n = (16 if n < 0 else 0), abs(n)
        if n < 8:
            return offset + n
        return offset + min(15, 8 + int(math.log(n / 8) / math.log(32 / 8) * 8))

    @staticmethod
    def rope(x):  # interleaved pairs on the first 32 channels, positions 0..F-1, theta 10000
        f = x.shape[-2]
        inv = 1.0 / 10000 ** (torch.arange(0, 32, 2, dtype=torch.float64) / 32)
        ang = torch.arange(f, dtype=torch.float64)[:, None] * inv[None]  # (F, 16)
        rot, rest = x[..., :32], x[..., 32:]
        x1, x2 = rot[..., 0::2], rot[..., 1::2]
        c, s = torch.cos(ang), torch.sin(ang)
        out = torch.stack([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1).flatten(-2)
        return torch.cat([out, rest], dim=-1)

    def temporal_attention(self, name, x):  # x ((b hw), f, c)
        d = x.shape[-1] // self.heads
        split = lambda y: y.reshape(*y.shape[:2], self.heads, d).transpose(1, 2)
        q = split(self.linear(f"{name}.to_q", x, bias=False) * d**-0.5)
        k, v = (
            split(self.linear(f"{name}.to_k", x, bias=False)),
            split(self.linear(f"{name}.to_v", x, bias=False)),
        )
        f = x.shape[1]
        table = self.w[f"{name}.time_rel_pos_bias.relative_attention_bias.weight"]  # (32, heads)
        buckets = torch.tensor([[self.bucket(i - j) for j in range(f)] for i in range(f)])
        sim = self.rope(q) @ self.rope(k).transpose(-1, -2) + table[buckets].permute(2, 0, 1)
        out = (torch.softmax(sim, -1) @ v).transpose(1, 2).reshape(x.shape)
        return self.linear(f"{name}.to_out.0", out)

    def transformer(self, name, x, ctx):
        b, c, f, h, w = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        res = frames
        y = F.group_norm(
            frames, self.groups, self.w[f"{name}.norm.weight"], self.w[f"{name}.norm.bias"], 1e-6
        )
        y = F.conv2d(y, self.w[f"{name}.proj_in.weight"], self.w[f"{name}.proj_in.bias"])
        y = y.permute(0, 2, 3, 1).reshape(b * f, h * w, c)
        ctx_f = ctx.repeat_interleave(f, dim=0)  # 'b n c -> (b f) n c'
        blk = f"{name}.transformer_blocks.0"
        y = self.attention(f"{blk}.attn1", self.ln(f"{blk}.norm1", y), self.ln(f"{blk}.norm1", y)) + y
        y = self.attention(f"{blk}.attn2", self.ln(f"{blk}.norm2", y), ctx_f) + y
        t = y.reshape(b, f, h * w, c).permute(0, 2, 1, 3).reshape(b * h * w, f, c)
        t = self.temporal_attention(f"{blk}.attn_temp", self.ln(f"{blk}.norm_temp", t)) + t
        y = t.reshape(b, h * w, f, c).permute(0, 2, 1, 3).reshape(b * f, h * w, c)
        hid = self.linear(f"{blk}.ff.net.0.proj", self.ln(f"{blk}.norm3", y))
        value, gate = hid.chunk(2, dim=-1)
        y = self.linear(f"{blk}.ff.net.2", value * F.gelu(gate)) + y
        y = y.reshape(b * f, h, w, c).permute(0, 3, 1, 2)
        y = F.conv2d(y, self.w[f"{name}.proj_out.weight"], self.w[f"{name}.proj_out.bias"]) + res
        return y.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)

    def __call__(self, x, t, ctx):
        half = self.channels[0] // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float64) / half)
        ang = t.double()[:, None] * freqs[None]
        temb = torch.cat([torch.cos(ang), torch.sin(ang)], -1)
        temb = self.linear("time_embedding.linear_2", F.silu(self.linear("time_embedding.linear_1", temb)))
        h = self.conv("conv_in", x)
        skips = [h]
        n = len(self.channels)
        for i in range(n):
            for j in range(self.layers):
                h = self.resnet(f"down_blocks.{i}.resnets.{j}", h, temb)
                if f"down_blocks.{i}.attentions.{j}.norm.weight" in self.w:
                    h = self.transformer(f"down_blocks.{i}.attentions.{j}", h, ctx)
                skips.append(h)
            if i < n - 1:
                h = self.conv(f"down_blocks.{i}.downsamplers.0.conv", h, stride=2)
                skips.append(h)
        h = self.resnet("mid_block.resnets.0", h, temb)
        h = self.transformer("mid_block.attentions.0", h, ctx)
        h = self.resnet("mid_block.resnets.1", h, temb)
        for i in range(n):
            for j in range(self.layers + 1):
                h = self.resnet(f"up_blocks.{i}.resnets.{j}", torch.cat([h, skips.pop()], dim=1), temb)
                if f"up_blocks.{i}.attentions.{j}.norm.weight" in self.w:
                    h = self.transformer(f"up_blocks.{i}.attentions.{j}", h, ctx)
            if i < n - 1:
                h = F.interpolate(h, scale_factor=(1, 2, 2), mode="nearest")
                h = self.conv(f"up_blocks.{i}.upsamplers.0.conv", h)
        return self.conv("conv_out", F.silu(self.gn("conv_norm_out", h, 1e-5)))


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
    with pytest.raises(ValueError, match="upcast_attention=True"):
        unet3d.UNet3DConfig.from_diffusers_dict({**DIFFUSERS_CONFIG, "upcast_attention": True})
    sd = dict(lavie_state_dict(sd2d))
    sd.pop("down_blocks.0.attentions.0.transformer_blocks.0.attn_temp.to_k.weight")
    with pytest.raises(state.StateMismatchError, match="attn_temp.to_k.kernel"):
        convert_unet.load_unet_from_torch(sd, our_config())
