"""AutoencoderKL (Rombach et al. 2022): SD 1.x's ×8 VAE and the ×4 upscaler's VAE, channels-last.

Encoder: conv_in → per level `layers_per_block` resnets (+ a stride-2 conv except at the last
level) → mid (resnet, single-head self-attention, resnet) → GroupNorm/SiLU/conv_out → 2·latent
channels → quant_conv → a diagonal Gaussian. Decoder mirrors it with `layers_per_block + 1` resnets
and nearest ×2 upsampling. Parameter paths mirror diffusers (`vae_blocks` holds the pieces).

Latents are unscaled here: the diffusion model works on ``z · scaling_factor`` (0.18215 for SD 1.x,
0.08333 for the ×4 upscaler) — `scale_latents` / `unscale_latents` apply it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from lavie_jax.models import attention_core, conv, io, vae_blocks

# diffusers' AutoencoderKL.__init__ defaults, used for fields a config.json leaves out.
DIFFUSERS_DEFAULTS = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": (64,),
    "layers_per_block": 1,
    "norm_num_groups": 32,
    "scaling_factor": 0.18215,
}
# Options of diffusers' config that this port implements only with one value.
DIFFUSERS_FIXED = {
    "_class_name": "AutoencoderKL",
    "act_fn": "silu",
    "use_quant_conv": True,
    "use_post_quant_conv": True,
    "mid_block_add_attention": True,
    "shift_factor": None,  # SD3/Flux latent shift: not an SD 1.x VAE
    "latents_mean": None,  # SDXL-style per-channel latent statistics: idem
    "latents_std": None,
}
# Fields that do not change the computation (`force_upcast` is a fp16 hint, `sample_size` a tiling
# hint); diffusers' bookkeeping fields (``_diffusers_version``, ``_name_or_path``, …) start with "_".
DIFFUSERS_IGNORED = {"sample_size", "force_upcast"}


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    in_channels: int = 3
    out_channels: int = 3
    latent_channels: int = 4
    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    norm_num_groups: int = 32
    scaling_factor: float = 0.18215
    attention_impl: str = "xla"  # mid-block attention: 'xla' | 'chunked' | 'cudnn' (attention_core)

    def __post_init__(self):
        object.__setattr__(self, "block_out_channels", tuple(self.block_out_channels))
        if not self.block_out_channels:
            raise ValueError("VAEConfig: block_out_channels=() is empty; expected one width per level")
        if self.layers_per_block < 1:
            raise ValueError(f"VAEConfig: layers_per_block={self.layers_per_block}; expected ≥ 1")
        if self.attention_impl not in attention_core.IMPLEMENTATIONS:
            raise ValueError(
                f"VAEConfig: attention_impl={self.attention_impl!r}; expected one of "
                f"{attention_core.IMPLEMENTATIONS}"
            )

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)

    @classmethod
    def from_dict(cls, d: dict) -> VAEConfig:
        """Our own schema (`to_dict`); unknown fields are errors."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"VAEConfig: unknown field(s) {unknown}; expected some of {sorted(names)}")
        return cls(**d)

    @classmethod
    def from_diffusers_dict(cls, d: dict) -> VAEConfig:
        """Read diffusers' ``vae/config.json``; options this port does not implement are errors."""
        for field, expected in DIFFUSERS_FIXED.items():
            if field in d and d[field] != expected:
                raise ValueError(f"VAE config: {field}={d[field]!r} is not supported; expected {expected!r}")
        merged = {**DIFFUSERS_DEFAULTS, **{k: v for k, v in d.items() if k in DIFFUSERS_DEFAULTS}}
        levels = len(merged["block_out_channels"])
        for field, block in (
            ("down_block_types", "DownEncoderBlock2D"),
            ("up_block_types", "UpDecoderBlock2D"),
        ):
            types = list(d.get(field, [block] * levels))  # absent: the only block type there is
            if types != [block] * levels:
                raise ValueError(
                    f"VAE config: {field}={types!r} is not supported; expected {levels}× {block!r} "
                    f"(one per entry of block_out_channels)"
                )
        known = {
            *DIFFUSERS_DEFAULTS,
            *DIFFUSERS_FIXED,
            *DIFFUSERS_IGNORED,
            "down_block_types",
            "up_block_types",
        }
        unknown = sorted(k for k in set(d) - known if not k.startswith("_"))
        if unknown:
            raise ValueError(f"VAE config: unknown option(s) {unknown}; this port knows {sorted(known)}")
        return cls(**merged)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "block_out_channels": list(self.block_out_channels)}


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DiagonalGaussian:
    """The encoder's posterior N(mean, exp(logvar)) per latent element (a pytree: jit can return it)."""

    mean: jax.Array
    logvar: jax.Array  # clamped to [-30, 20] as diffusers' DiagonalGaussianDistribution

    def sample(self, key: jax.Array) -> jax.Array:
        """``mean + exp(logvar / 2) · ε``, ε ~ N(0, I)."""
        eps = jax.random.normal(key, self.mean.shape, self.mean.dtype)
        return self.mean + jnp.exp(0.5 * self.logvar) * eps

    def mode(self) -> jax.Array:
        return self.mean


class AutoencoderKL(nnx.Module):
    def __init__(self, config: VAEConfig, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.config = config
        c = config
        blocks = dict(
            block_out_channels=c.block_out_channels,
            layers_per_block=c.layers_per_block,
            groups=c.norm_num_groups,
            attention_impl=c.attention_impl,
            rngs=rngs,
            dtype=dtype,
        )
        self.encoder = vae_blocks.Encoder(c.in_channels, 2 * c.latent_channels, **blocks)
        self.decoder = vae_blocks.Decoder(c.latent_channels, c.out_channels, **blocks)
        latent2 = 2 * c.latent_channels
        self.quant_conv = conv.conv2d(latent2, latent2, 1, rngs=rngs, dtype=dtype)
        self.post_quant_conv = conv.conv2d(c.latent_channels, c.latent_channels, 1, rngs=rngs, dtype=dtype)

    # ------------------------------------------------------------------ images (N, H, W, C)
    def encode(self, x: jax.Array) -> DiagonalGaussian:
        """Images ``(N, H, W, C_in)`` in [-1, 1] → the posterior over unscaled ``(N, H/f, W/f, latent)``."""
        self._check_pixels("encode", x, 4)
        moments = self.quant_conv(self.encoder(x))  # (N, h, w, 2·latent)
        mean, logvar = jnp.split(moments, 2, axis=-1)  # mean first, as diffusers' chunk(2, dim=1)
        return DiagonalGaussian(mean, jnp.clip(logvar, -30.0, 20.0))

    def decode(self, z: jax.Array) -> jax.Array:
        """Unscaled latents ``(N, h, w, latent)`` → images ``(N, h·f, w·f, C_out)``, about [-1, 1]."""
        self._check_latents("decode", z, 4)
        return self.decoder(self.post_quant_conv(z))

    # ------------------------------------------------------------------ videos (B, F, H, W, C)
    def encode_video(self, x: jax.Array, *, frame_batch: int = 8) -> DiagonalGaussian:
        """``(B, F, H, W, C_in)`` → the posterior over ``(B, F, h, w, latent)``, `frame_batch` frames
        at a time."""
        self._check_pixels("encode_video", x, 5)
        return _map_frames(self.encode, x, frame_batch)

    def decode_video(self, z: jax.Array, *, frame_batch: int = 8) -> jax.Array:
        """``(B, F, h, w, latent)`` → ``(B, F, H, W, C_out)``, `frame_batch` frames at a time."""
        self._check_latents("decode_video", z, 5)
        return _map_frames(self.decode, z, frame_batch)

    # ------------------------------------------------------------------ latent scaling
    def scale_latents(self, z: jax.Array) -> jax.Array:
        """Encoder latents → the diffusion model's latents (``z · scaling_factor``)."""
        return z * self.config.scaling_factor

    def unscale_latents(self, z: jax.Array) -> jax.Array:
        """The diffusion model's latents → decoder input (``z / scaling_factor``)."""
        return z / self.config.scaling_factor

    # ------------------------------------------------------------------ validation
    def _check_pixels(self, where: str, x: jax.Array, ndim: int) -> None:
        c, f = self.config.in_channels, self.config.downsample_factor
        layout = "(N, H, W, {})" if ndim == 4 else "(B, F, H, W, {})"
        if x.ndim != ndim or x.shape[-1] != c:
            raise ValueError(f"AutoencoderKL.{where}: x must be {layout.format(c)}, got shape {x.shape}")
        h, w = x.shape[-3:-1]
        if h % f or w % f:
            raise ValueError(
                f"AutoencoderKL.{where}: image size H×W={h}×{w} must be multiples of the VAE's "
                f"downsampling factor {f}"
            )

    def _check_latents(self, where: str, z: jax.Array, ndim: int) -> None:
        c = self.config.latent_channels
        layout = "(N, h, w, {})" if ndim == 4 else "(B, F, h, w, {})"
        if z.ndim != ndim or z.shape[-1] != c:
            raise ValueError(f"AutoencoderKL.{where}: z must be {layout.format(c)}, got shape {z.shape}")


def _map_frames(fn: Callable, x: jax.Array, frame_batch: int):
    """Apply an image function to every frame of ``(B, F, ...)`` in sequential groups of `frame_batch`.

    ``lax.map`` runs the groups one after another, so only one group's activations are alive; the
    last group is zero-padded (static shapes under jit) and the padding dropped. `fn` may return any
    pytree of ``(N, ...)`` arrays.
    """
    if not isinstance(frame_batch, int) or frame_batch < 1:
        raise ValueError(f"frame_batch={frame_batch!r}; expected an int ≥ 1")
    b, f = x.shape[:2]
    n = b * f
    fb = min(frame_batch, n)
    pad = -n % fb
    frames = x.reshape(n, *x.shape[2:])  # (B·F, H, W, C): frames are independent images
    frames = jnp.pad(frames, [(0, pad)] + [(0, 0)] * (frames.ndim - 1))  # (G·fb, H, W, C)
    groups = frames.reshape((n + pad) // fb, fb, *frames.shape[1:])  # (G, fb, H, W, C)
    out = jax.lax.map(fn, groups)  # leaves (G, fb, H', W', C')

    def unbatch(y: jax.Array) -> jax.Array:
        y = y.reshape(-1, *y.shape[2:])[:n]  # (B·F, H', W', C')
        return y.reshape(b, f, *y.shape[1:])  # (B, F, H', W', C')

    return jax.tree.map(unbatch, out)


def load_vae(folder: str | os.PathLike) -> AutoencoderKL:
    """A VAE component folder (``config.json`` + ``model.safetensors``) → a ready module."""
    return io.load_component(
        folder, kind="vae", build=lambda d: AutoencoderKL(VAEConfig.from_dict(d), rngs=nnx.Rngs(0))
    )


def save_vae(folder: str | os.PathLike, model: AutoencoderKL, *, dtype: str = "float32") -> None:
    io.save_component(folder, model, model.config.to_dict(), kind="vae", dtype=dtype)
