"""AutoencoderKL (Rombach et al. 2022): SD 1.x's ×8 VAE and the ×4 upscaler's VAE, channels-last.

Encoder: conv_in → per level `layers_per_block` resnets (+ a stride-2 conv except at the last
level) → mid (resnet, single-head self-attention, resnet) → GroupNorm/SiLU/conv_out → 2·latent
channels → quant_conv → a diagonal Gaussian. Decoder mirrors it with `layers_per_block + 1` resnets
and nearest ×2 upsampling. Latents are unscaled here: callers multiply by ``config.scaling_factor``
(0.18215 for SD 1.x, 0.08333 for the ×4 upscaler). Parameter paths mirror diffusers.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from lavie_jax.models import attention, conv, io, norms, resnet

EPS = 1e-6  # every GroupNorm of the VAE


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    in_channels: int = 3
    out_channels: int = 3
    latent_channels: int = 4
    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    norm_num_groups: int = 32
    scaling_factor: float = 0.18215

    def __post_init__(self):
        object.__setattr__(self, "block_out_channels", tuple(self.block_out_channels))
        if not self.block_out_channels:
            raise ValueError("VAEConfig: block_out_channels is empty")

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)

    @classmethod
    def from_dict(cls, d: dict) -> VAEConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"VAEConfig: unknown field(s) {unknown}; expected some of {sorted(names)}")
        return cls(**d)

    @classmethod
    def from_diffusers_dict(cls, d: dict) -> VAEConfig:
        """Read diffusers' ``vae/config.json``; options this port does not implement are errors."""
        checks = {
            "down_block_types": lambda v: all(t == "DownEncoderBlock2D" for t in v),
            "up_block_types": lambda v: all(t == "UpDecoderBlock2D" for t in v),
            "act_fn": lambda v: v == "silu",
            "use_quant_conv": lambda v: v is True,
            "use_post_quant_conv": lambda v: v is True,
            "mid_block_add_attention": lambda v: v is True,
        }
        for field, ok in checks.items():
            if field in d and not ok(d[field]):
                raise ValueError(f"VAE config: {field}={d[field]!r} is not supported by this port")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names})

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "block_out_channels": list(self.block_out_channels)}


@dataclasses.dataclass
class DiagonalGaussian:
    """The encoder's posterior N(mean, exp(logvar)) per latent element, logvar clamped to [-30, 20]."""

    mean: jax.Array
    logvar: jax.Array

    def sample(self, key: jax.Array) -> jax.Array:
        return self.mean + jnp.exp(0.5 * self.logvar) * jax.random.normal(
            key, self.mean.shape, self.mean.dtype
        )

    def mode(self) -> jax.Array:
        return self.mean


class MidAttention(attention.Attention):
    """GroupNorm → single-head self-attention over H·W tokens → residual (``attentions.0`` in diffusers)."""

    def __init__(self, channels: int, groups: int, *, rngs: nnx.Rngs, dtype=jnp.float32):
        super().__init__(channels, 1, qkv_bias=True, rngs=rngs, dtype=dtype)
        self.group_norm = norms.GroupNorm(groups, channels, EPS, dtype=dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        b, h, w, c = x.shape
        tokens = self.group_norm(x).reshape(b, h * w, c)  # (B, HW, C)
        return x + super().__call__(tokens).reshape(b, h, w, c)


class MidBlock(nnx.Module):
    def __init__(self, channels: int, groups: int, *, rngs: nnx.Rngs, dtype=jnp.float32):
        block = lambda: resnet.ResnetBlock3D(
            channels, channels, groups=groups, eps=EPS, rngs=rngs, dtype=dtype
        )
        self.resnets = nnx.List([block(), block()])
        self.attentions = nnx.List([MidAttention(channels, groups, rngs=rngs, dtype=dtype)])

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.resnets[1](self.attentions[0](self.resnets[0](x)))


class Level(nnx.Module):
    """One encoder (``down_blocks.i``) or decoder (``up_blocks.i``) level: resnets, then a resampler."""

    def __init__(self, cin: int, cout: int, n: int, groups: int, resample: str | None, *, rngs, dtype):
        chans = [cin] + [cout] * n
        self.resnets = nnx.List(
            [
                resnet.ResnetBlock3D(a, b, groups=groups, eps=EPS, rngs=rngs, dtype=dtype)
                for a, b in zip(chans, chans[1:])
            ]
        )
        if resample == "down":
            self.downsamplers = nnx.List(
                [conv.Downsample(cout, asymmetric_padding=True, rngs=rngs, dtype=dtype)]
            )
        elif resample == "up":
            self.upsamplers = nnx.List([conv.Upsample(cout, rngs=rngs, dtype=dtype)])

    def __call__(self, x: jax.Array) -> jax.Array:
        for block in self.resnets:
            x = block(x)
        for sampler in (*getattr(self, "downsamplers", ()), *getattr(self, "upsamplers", ())):
            x = sampler(x)
        return x


class Encoder(nnx.Module):
    def __init__(self, c: VAEConfig, *, rngs: nnx.Rngs, dtype=jnp.float32):
        ch, g, last = c.block_out_channels, c.norm_num_groups, len(c.block_out_channels) - 1
        self.conv_in = conv.conv2d(c.in_channels, ch[0], 3, rngs=rngs, dtype=dtype)
        self.down_blocks = nnx.List(
            [
                Level(
                    ch[max(i - 1, 0)],
                    ch[i],
                    c.layers_per_block,
                    g,
                    None if i == last else "down",
                    rngs=rngs,
                    dtype=dtype,
                )
                for i in range(len(ch))
            ]
        )
        self.mid_block = MidBlock(ch[-1], g, rngs=rngs, dtype=dtype)
        self.conv_norm_out = norms.GroupNorm(g, ch[-1], EPS, dtype=dtype)
        self.conv_out = conv.conv2d(ch[-1], 2 * c.latent_channels, 3, rngs=rngs, dtype=dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.conv_in(x)
        for level in self.down_blocks:
            x = level(x)
        x = self.mid_block(x)
        return self.conv_out(nnx.silu(self.conv_norm_out(x)))


class Decoder(nnx.Module):
    def __init__(self, c: VAEConfig, *, rngs: nnx.Rngs, dtype=jnp.float32):
        ch, g, last = tuple(reversed(c.block_out_channels)), c.norm_num_groups, len(c.block_out_channels) - 1
        self.conv_in = conv.conv2d(c.latent_channels, ch[0], 3, rngs=rngs, dtype=dtype)
        self.mid_block = MidBlock(ch[0], g, rngs=rngs, dtype=dtype)
        self.up_blocks = nnx.List(
            [
                Level(
                    ch[max(i - 1, 0)],
                    ch[i],
                    c.layers_per_block + 1,
                    g,
                    None if i == last else "up",
                    rngs=rngs,
                    dtype=dtype,
                )
                for i in range(len(ch))
            ]
        )
        self.conv_norm_out = norms.GroupNorm(g, ch[-1], EPS, dtype=dtype)
        self.conv_out = conv.conv2d(ch[-1], c.out_channels, 3, rngs=rngs, dtype=dtype)

    def __call__(self, z: jax.Array) -> jax.Array:
        x = self.mid_block(self.conv_in(z))
        for level in self.up_blocks:
            x = level(x)
        return self.conv_out(nnx.silu(self.conv_norm_out(x)))


class AutoencoderKL(nnx.Module):
    def __init__(self, config: VAEConfig, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.config = config
        latent2 = 2 * config.latent_channels
        self.encoder = Encoder(config, rngs=rngs, dtype=dtype)
        self.decoder = Decoder(config, rngs=rngs, dtype=dtype)
        self.quant_conv = conv.conv2d(latent2, latent2, 1, rngs=rngs, dtype=dtype)
        self.post_quant_conv = conv.conv2d(
            config.latent_channels, config.latent_channels, 1, rngs=rngs, dtype=dtype
        )

    def encode(self, x: jax.Array) -> DiagonalGaussian:
        """Images ``(N, H, W, C_in)`` in [-1, 1] → the posterior over ``(N, H/f, W/f, latent)``."""
        f = self.config.downsample_factor
        if x.ndim != 4 or x.shape[-1] != self.config.in_channels:
            raise ValueError(
                f"AutoencoderKL.encode: x must be (N, H, W, {self.config.in_channels}), got {x.shape}"
            )
        if x.shape[1] % f or x.shape[2] % f:
            raise ValueError(f"AutoencoderKL.encode: H×W={x.shape[1]}×{x.shape[2]} must be multiples of {f}")
        mean, logvar = jnp.split(self.quant_conv(self.encoder(x)), 2, axis=-1)
        return DiagonalGaussian(mean, jnp.clip(logvar, -30.0, 20.0))

    def decode(self, z: jax.Array) -> jax.Array:
        """Unscaled latents ``(N, h, w, latent)`` → images ``(N, h·f, w·f, C_out)``."""
        if z.ndim != 4 or z.shape[-1] != self.config.latent_channels:
            raise ValueError(
                f"AutoencoderKL.decode: z must be (N, h, w, {self.config.latent_channels}), got {z.shape}"
            )
        return self.decoder(self.post_quant_conv(z))

    def encode_video(self, x: jax.Array, *, frame_batch: int = 8) -> DiagonalGaussian:
        """``(B, F, H, W, C)`` → posterior over ``(B, F, h, w, latent)``, `frame_batch` frames at a time."""
        moments = _map_frames(lambda f: jnp.concatenate(_posterior(self.encode(f)), -1), x, frame_batch)
        mean, logvar = jnp.split(moments, 2, axis=-1)
        return DiagonalGaussian(mean, logvar)

    def decode_video(self, z: jax.Array, *, frame_batch: int = 8) -> jax.Array:
        """``(B, F, h, w, latent)`` → ``(B, F, H, W, C_out)``, `frame_batch` frames at a time."""
        return _map_frames(self.decode, z, frame_batch)


def _posterior(p: DiagonalGaussian) -> tuple[jax.Array, jax.Array]:
    return p.mean, p.logvar


def _map_frames(fn: Callable[[jax.Array], jax.Array], x: jax.Array, frame_batch: int) -> jax.Array:
    """Apply an image function to every frame of ``(B, F, ...)`` in sequential groups of `frame_batch`
    (``lax.map``: one group's activations alive at a time); the last group is zero-padded."""
    if x.ndim != 5:
        raise ValueError(f"expected a video (B, F, H, W, C), got shape {x.shape}")
    if frame_batch < 1:
        raise ValueError(f"frame_batch={frame_batch}; expected ≥ 1")
    b, f = x.shape[:2]
    frames = x.reshape(b * f, *x.shape[2:])  # (B·F, H, W, C)
    n = b * f
    fb = min(frame_batch, n)
    pad = -n % fb
    frames = jnp.pad(frames, [(0, pad)] + [(0, 0)] * (frames.ndim - 1))
    groups = frames.reshape((n + pad) // fb, fb, *frames.shape[1:])  # (G, fb, H, W, C)
    out = jax.lax.map(fn, groups)  # (G, fb, H', W', C')
    out = out.reshape(-1, *out.shape[2:])[:n]  # (B·F, H', W', C')
    return out.reshape(b, f, *out.shape[1:])


def load_vae(folder: str | os.PathLike) -> AutoencoderKL:
    """A VAE component folder (``config.json`` + ``model.safetensors``) → a ready module."""
    return io.load_component(
        folder, kind="vae", build=lambda d: AutoencoderKL(VAEConfig.from_dict(d), rngs=nnx.Rngs(0))
    )


def save_vae(folder: str | os.PathLike, model: AutoencoderKL, *, dtype: str = "float32") -> None:
    io.save_component(folder, model, model.config.to_dict(), kind="vae", dtype=dtype)
