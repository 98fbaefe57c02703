"""The AutoencoderKL's encoder and decoder (diffusers' ``Encoder`` / ``Decoder``), channels-last images.

Every GroupNorm has eps 1e-6 and the resnets take no time embedding. The mid block is resnet →
single-head self-attention over the H·W tokens (GroupNorm first, residual after) → resnet.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lavie_jax.models import attention, conv, norms, resnet

EPS = 1e-6  # every GroupNorm of the VAE


def mid_attention(channels: int, groups: int, impl: str, *, rngs: nnx.Rngs, dtype) -> attention.Attention:
    """diffusers' VAE attention: one head of width `channels`, q/k/v with bias, its GroupNorm held by the
    attention module itself (``attentions.0.group_norm``). Built as an `attention.Attention` so that
    `attention.set_impl` (which switches spatial attention) reaches it — the ×4 upscaler's decoder
    attends over every latent pixel, where only the chunked implementation fits in memory."""
    attn = attention.Attention(channels, 1, qkv_bias=True, impl=impl, rngs=rngs, dtype=dtype)
    attn.group_norm = norms.GroupNorm(groups, channels, EPS, dtype=dtype)
    return attn


class MidBlock(nnx.Module):
    """``mid_block``: ``resnets.0`` → ``attentions.0`` (+ residual) → ``resnets.1``."""

    def __init__(self, channels: int, groups: int, attention_impl: str, *, rngs: nnx.Rngs, dtype):
        def block():
            return resnet.ResnetBlock3D(channels, channels, groups=groups, eps=EPS, rngs=rngs, dtype=dtype)

        self.resnets = nnx.List([block(), block()])
        self.attentions = nnx.List([mid_attention(channels, groups, attention_impl, rngs=rngs, dtype=dtype)])

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.resnets[0](x)
        attn = self.attentions[0]
        b, h, w, c = x.shape
        tokens = attn.group_norm(x).reshape(b, h * w, c)  # (N, H·W, C)
        x = x + attn(tokens).reshape(b, h, w, c)  # (N, H, W, C)
        return self.resnets[1](x)


class Level(nnx.Module):
    """One encoder level (``down_blocks.i``: resnets, then ``downsamplers.0``) or decoder level
    (``up_blocks.i``: resnets, then ``upsamplers.0``); the last level of each has no resampler."""

    def __init__(
        self, cin: int, cout: int, n: int, groups: int, resample: str | None, *, rngs: nnx.Rngs, dtype
    ):
        chans = [cin] + [cout] * n
        self.resnets = nnx.List(
            [
                resnet.ResnetBlock3D(a, b, groups=groups, eps=EPS, rngs=rngs, dtype=dtype)
                for a, b in zip(chans, chans[1:])
            ]
        )
        self.resample = resample
        if resample == "down":  # 3×3 stride-2 conv, zero pad right/bottom only
            self.downsamplers = nnx.List(
                [conv.Downsample(cout, asymmetric_padding=True, rngs=rngs, dtype=dtype)]
            )
        elif resample == "up":  # nearest ×2, 3×3 conv
            self.upsamplers = nnx.List([conv.Upsample(cout, rngs=rngs, dtype=dtype)])

    def __call__(self, x: jax.Array) -> jax.Array:
        for block in self.resnets:
            x = block(x)
        if self.resample == "down":
            x = self.downsamplers[0](x)
        elif self.resample == "up":
            x = self.upsamplers[0](x)
        return x


class Encoder(nnx.Module):
    """``(N, H, W, in_channels)`` → ``(N, H/f, W/f, out_channels)`` moments (f = 2^(levels-1))."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        block_out_channels: tuple[int, ...],
        layers_per_block: int,
        groups: int,
        attention_impl: str,
        rngs: nnx.Rngs,
        dtype=jnp.float32,
    ):
        ch, last = block_out_channels, len(block_out_channels) - 1
        self.conv_in = conv.conv2d(in_channels, ch[0], 3, rngs=rngs, dtype=dtype)
        self.down_blocks = nnx.List(
            [
                Level(
                    ch[max(i - 1, 0)],
                    ch[i],
                    layers_per_block,
                    groups,
                    None if i == last else "down",
                    rngs=rngs,
                    dtype=dtype,
                )
                for i in range(len(ch))
            ]
        )
        self.mid_block = MidBlock(ch[-1], groups, attention_impl, rngs=rngs, dtype=dtype)
        self.conv_norm_out = norms.GroupNorm(groups, ch[-1], EPS, dtype=dtype)
        self.conv_out = conv.conv2d(ch[-1], out_channels, 3, rngs=rngs, dtype=dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.conv_in(x)
        for level in self.down_blocks:
            x = level(x)
        x = self.mid_block(x)
        return self.conv_out(nnx.silu(self.conv_norm_out(x)))


class Decoder(nnx.Module):
    """``(N, h, w, in_channels)`` latents → ``(N, h·f, w·f, out_channels)``; widths in reverse order,
    ``layers_per_block + 1`` resnets per level."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        block_out_channels: tuple[int, ...],
        layers_per_block: int,
        groups: int,
        attention_impl: str,
        rngs: nnx.Rngs,
        dtype=jnp.float32,
    ):
        ch, last = tuple(reversed(block_out_channels)), len(block_out_channels) - 1
        self.conv_in = conv.conv2d(in_channels, ch[0], 3, rngs=rngs, dtype=dtype)
        self.mid_block = MidBlock(ch[0], groups, attention_impl, rngs=rngs, dtype=dtype)
        self.up_blocks = nnx.List(
            [
                Level(
                    ch[max(i - 1, 0)],
                    ch[i],
                    layers_per_block + 1,
                    groups,
                    None if i == last else "up",
                    rngs=rngs,
                    dtype=dtype,
                )
                for i in range(len(ch))
            ]
        )
        self.conv_norm_out = norms.GroupNorm(groups, ch[-1], EPS, dtype=dtype)
        self.conv_out = conv.conv2d(ch[-1], out_channels, 3, rngs=rngs, dtype=dtype)

    def __call__(self, z: jax.Array) -> jax.Array:
        x = self.mid_block(self.conv_in(z))
        for level in self.up_blocks:
            x = level(x)
        return self.conv_out(nnx.silu(self.conv_norm_out(x)))
