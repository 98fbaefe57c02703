"""The video UNet: one configurable class for LaVie's three stages (spec §1.7, §2, §3, §4).

    unet(sample (B, F, H, W, C), timesteps, encoder_hidden_states, *, low_res=None,
         class_labels=None, num_image_frames=0) -> (B, F, H, W, out_channels)

Presets: `lavie_base` (4 input channels, RoPE + relative-bias temporal attention),
`lavie_interpolation` (8 input channels = noisy latents ++ copied base latents, sparse-causal
``attn1``, position-free temporal attention after the feed-forward) and `lavie_vsr` (the SD ×4
upscaler layout: ``sample`` has ``in_channels − low_res_channels = 4`` channels and ``low_res`` the
3-channel pixel video at latent size, concatenated inside; ``class_labels`` is the noise level;
temporal resnets in every transformer and a `TemporalModule3D` after every down, mid and up block;
the skip connections are taken before it). A noise level above ``max_noise_level`` is refused when
it is concrete (`check_noise_level`); under ``jit`` the caller checks it.

``encoder_hidden_states`` is ``(B, L, D)`` (one caption per clip, repeated to every frame) or
``(B, F, L, D)`` (one per frame, so each image of a joint batch has its own caption). The last
``num_image_frames`` frames are independent images: spatial layers see them, temporal layers skip
them, and the clip-wide GroupNorm statistics exclude them. ``temporal=None`` gives SD's 2-D UNet
applied per frame (with clip-wide resnet statistics).
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lavie_jax.models import conv, embeddings, io, norms, temporal_module, transformer, unet_blocks

DOWN_TYPES = {"CrossAttnDownBlock3D": True, "DownBlock3D": False}
UP_TYPES = {"CrossAttnUpBlock3D": True, "UpBlock3D": False}
# SD's 2-D names read as their 3-D counterparts (the inflation LaVie's from_pretrained_2d does).
_FROM_2D = {
    "CrossAttnDownBlock2D": "CrossAttnDownBlock3D",
    "DownBlock2D": "DownBlock3D",
    "CrossAttnUpBlock2D": "CrossAttnUpBlock3D",
    "UpBlock2D": "UpBlock3D",
}


def _per_level(value, n: int, name: str) -> tuple:
    values = tuple(value) if isinstance(value, (list, tuple)) else (value,) * n
    if len(values) != n:
        raise ValueError(f"UNet3DConfig: {name}={value!r} must be one value or {n} (one per level)")
    return values


@dataclasses.dataclass(frozen=True)
class UNet3DConfig:
    in_channels: int = 4
    out_channels: int = 4
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    layers_per_block: int = 2
    down_block_types: tuple[str, ...] = ("CrossAttnDownBlock3D",) * 3 + ("DownBlock3D",)
    up_block_types: tuple[str, ...] = ("UpBlock3D",) + ("CrossAttnUpBlock3D",) * 3
    num_attention_heads: int | tuple[int, ...] = 8  # SD configs call this "attention_head_dim"
    cross_attention_dim: int = 768
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    use_linear_projection: bool = False
    only_cross_attention: bool | tuple[bool, ...] = False
    flip_sin_to_cos: bool = True
    freq_shift: int = 0
    num_class_embeds: int | None = None
    max_noise_level: int | None = None  # VSR: class labels (noise levels) above it are refused
    low_res_channels: int = 0  # VSR: channels of `low_res`, concatenated after the sample's
    # Temporal layers inside each transformer, see transformer.TEMPORAL_KINDS: None (a 2-D UNet per
    # frame), "rope_relpos" (base), "plain" (interpolation), "conv_rope_relpos" (VSR).
    temporal: str | None = "rope_relpos"
    temporal_after_ff: bool = False  # interpolation: attn1 → attn2 → ff → temporal
    sparse_causal: bool = False  # interpolation: attn1 attends to frames 0 and i−1
    temporal_modules: bool = False  # VSR: a TemporalModule3D after every down, mid and up block
    # Not in LaVie: a sinusoidal embedding of the frame index added to every temporal attention's
    # normed input (as AnimateDiff's motion modules do), so layers know each frame's absolute place.
    frame_position: bool = False
    # Not in LaVie: a learned projection (zero at initialisation) of the sinusoidal embedding of each
    # video frame's index, added to that frame's time embedding, so every resnet knows where its
    # frame sits in the clip. Image frames get none.
    frame_time_embedding: bool = False
    attention_impl: str = "xla"

    def __post_init__(self):
        n = len(self.block_out_channels)
        for name in ("block_out_channels", "down_block_types", "up_block_types"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if n == 0 or len(self.down_block_types) != n or len(self.up_block_types) != n:
            raise ValueError(
                f"UNet3DConfig: block_out_channels ({n}), down_block_types ({len(self.down_block_types)}) "
                f"and up_block_types ({len(self.up_block_types)}) must have the same non-zero length"
            )
        for name, known in (("down_block_types", DOWN_TYPES), ("up_block_types", UP_TYPES)):
            bad = [t for t in getattr(self, name) if t not in known]
            if bad:
                raise ValueError(f"UNet3DConfig: unknown {name} {bad}; expected {sorted(known)}")
        for name in ("num_attention_heads", "only_cross_attention"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
            _per_level(getattr(self, name), n, name)
        if self.temporal not in transformer.TEMPORAL_KINDS:
            raise ValueError(
                f"UNet3DConfig: temporal={self.temporal!r}; expected one of {transformer.TEMPORAL_KINDS}"
            )
        for name in (
            "temporal_after_ff",
            "sparse_causal",
            "temporal_modules",
            "frame_position",
            "frame_time_embedding",
        ):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"UNet3DConfig: {name}={getattr(self, name)!r}; expected True or False")
        if self.frame_position and self.temporal is None:
            raise ValueError("UNet3DConfig: frame_position=True with temporal=None; expected a temporal kind")
        if self.frame_time_embedding and self.temporal_modules:
            raise ValueError(
                "UNet3DConfig: frame_time_embedding=True with temporal_modules=True; expected at most one "
                "(the VSR temporal modules take one time embedding per clip)"
            )
        if self.sparse_causal and any(self.cross_only()):
            raise ValueError(
                f"UNet3DConfig: sparse_causal=True with only_cross_attention={self.only_cross_attention!r}; "
                "expected only_cross_attention=False (sparse-causal attention is a self-attention)"
            )
        if not isinstance(self.low_res_channels, int) or not 0 <= self.low_res_channels < self.in_channels:
            raise ValueError(
                f"UNet3DConfig: low_res_channels={self.low_res_channels!r}; expected an int in "
                f"0..in_channels-1={self.in_channels - 1}"
            )
        if self.max_noise_level is not None and (
            self.num_class_embeds is None or not 0 <= self.max_noise_level < self.num_class_embeds
        ):
            raise ValueError(
                f"UNet3DConfig: max_noise_level={self.max_noise_level!r}; expected None or a level in "
                f"0..num_class_embeds-1 (num_class_embeds={self.num_class_embeds!r})"
            )

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)

    def heads(self) -> tuple[int, ...]:
        return _per_level(self.num_attention_heads, len(self.block_out_channels), "num_attention_heads")

    def cross_only(self) -> tuple[bool, ...]:
        return _per_level(self.only_cross_attention, len(self.block_out_channels), "only_cross_attention")

    @classmethod
    def from_dict(cls, d: dict) -> UNet3DConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"UNet3DConfig: unknown field(s) {unknown}; expected some of {sorted(names)}")
        return cls(**d)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_diffusers_dict(cls, d: dict, **overrides) -> UNet3DConfig:
        """Read SD's ``unet/config.json``. Its ``attention_head_dim`` is the number of heads (legacy
        naming, spec §8.4); options this port does not implement are errors naming the field."""
        unsupported = {
            "act_fn": "silu",
            "center_input_sample": False,
            "downsample_padding": 1,
            "mid_block_scale_factor": 1,
            "upcast_attention": False,
            "resnet_time_scale_shift": "default",
            "time_embedding_type": "positional",
            "class_embed_type": None,
            "addition_embed_type": None,
            "encoder_hid_dim": None,
            "transformer_layers_per_block": 1,
            "dual_cross_attention": False,
            "mid_block_type": "UNetMidBlock2DCrossAttn",
        }
        for field, expected in unsupported.items():
            if field in d and d[field] is not None and d[field] != expected:
                raise ValueError(
                    f"UNet config: {field}={d[field]!r} is not supported (expected {expected!r})"
                )
        if d.get("num_attention_heads") is not None:
            raise ValueError(
                "UNet config: num_attention_heads is set; only SD 1.x's attention_head_dim is supported"
            )
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in d.items() if k in fields and v is not None}
        values["num_attention_heads"] = d.get("attention_head_dim", 8)
        for name in ("down_block_types", "up_block_types"):
            if name in d:
                values[name] = tuple(_FROM_2D.get(t, t) for t in d[name])
        return cls(**{**values, **overrides})


def lavie_base() -> UNet3DConfig:
    """The released base model (spec §2.1): SD 1.4's UNet with RoPE + relative-bias temporal attention."""
    return UNet3DConfig()


def lavie_interpolation() -> UNet3DConfig:
    """The released interpolation model (spec §3.1): SD 1.4's UNet with 8 input channels, sparse-causal
    ``attn1`` and position-free temporal attention after the feed-forward."""
    return UNet3DConfig(in_channels=8, temporal="plain", temporal_after_ff=True, sparse_causal=True)


def lavie_vsr() -> UNet3DConfig:
    """The released VSR model (spec §4.1): the SD ×4 upscaler's UNet (7 input channels, noise-level
    embedding, linear projections, text cross-attention in attn1 at the 512-channel levels) with
    temporal resnets, RoPE + relative-bias temporal attention and TemporalModule3Ds."""
    return UNet3DConfig(
        in_channels=7,
        low_res_channels=3,
        out_channels=4,
        block_out_channels=(256, 512, 512, 1024),
        down_block_types=("DownBlock3D",) + ("CrossAttnDownBlock3D",) * 3,
        up_block_types=("CrossAttnUpBlock3D",) * 3 + ("UpBlock3D",),
        num_attention_heads=8,
        cross_attention_dim=1024,
        use_linear_projection=True,
        only_cross_attention=(True, True, True, False),
        num_class_embeds=1000,
        max_noise_level=350,
        temporal="conv_rope_relpos",
        temporal_modules=True,
    )


def check_noise_level(config: UNet3DConfig, class_labels) -> None:
    """Raise ValueError when a concrete noise level exceeds ``config.max_noise_level`` (spec §4.1).

    Inside ``jit`` the labels are tracers and cannot be checked: callers that jit the UNet check the
    concrete level first (the pipelines do); an out-of-range label inside jit is not detected.
    """
    if config.max_noise_level is None or class_labels is None or isinstance(class_labels, jax.core.Tracer):
        return
    levels = np.asarray(class_labels)
    if levels.size and (levels.max() > config.max_noise_level or levels.min() < 0):
        raise ValueError(
            f"UNet3D: noise level (class_labels) {levels.tolist()} out of range; expected "
            f"0..max_noise_level={config.max_noise_level}"
        )


class UNet3D(nnx.Module):
    def __init__(self, config: UNet3DConfig, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.config = config
        c = config
        ch = c.block_out_channels
        n = len(ch)
        temb = 4 * ch[0]
        heads, cross_only = c.heads(), c.cross_only()

        def spec(level: int, up: bool = False, mid: bool = False) -> unet_blocks.LevelSpec:
            i = n - 1 - level if up else level
            return unet_blocks.LevelSpec(
                temb,
                c.norm_num_groups,
                c.norm_eps,
                heads[i],
                c.cross_attention_dim,
                cross_only[i] and not mid,  # SD's mid block always self-attends
                c.temporal,
                c.temporal_after_ff,
                c.sparse_causal,
                c.frame_position,
                c.attention_impl,
            )

        def temporal_modules(channels) -> nnx.List:
            return nnx.List(
                [
                    temporal_module.TemporalModule3D(
                        width, temb, groups=c.norm_num_groups, rngs=rngs, dtype=dtype
                    )
                    for width in channels
                ]
            )

        self.conv_in = conv.conv2d(c.in_channels, ch[0], 3, rngs=rngs, dtype=dtype)
        self.time_embedding = embeddings.TimestepEmbedding(ch[0], temb, rngs=rngs, dtype=dtype)
        if c.num_class_embeds is not None:  # the VSR model's noise-level embedding
            self.class_embedding = nnx.Embed(c.num_class_embeds, temb, dtype=dtype, rngs=rngs)
        if c.frame_time_embedding:
            zeros = nnx.initializers.zeros
            self.frame_embedding = nnx.Linear(
                ch[0], temb, kernel_init=zeros, bias_init=zeros, dtype=dtype, rngs=rngs
            )
        self.down_blocks = nnx.List(
            [
                unet_blocks.DownBlock(
                    ch[max(i - 1, 0)],
                    ch[i],
                    c.layers_per_block,
                    spec(i),
                    attention=DOWN_TYPES[c.down_block_types[i]],
                    downsample=i < n - 1,
                    rngs=rngs,
                    dtype=dtype,
                )
                for i in range(n)
            ]
        )
        self.mid_block = unet_blocks.MidBlock(ch[-1], spec(n - 1, mid=True), rngs=rngs, dtype=dtype)
        rev = tuple(reversed(ch))
        if c.temporal_modules:  # named as LaVie's VSR UNet names them
            self.down_temporal_blocks = temporal_modules(ch)
            self.mid_temporal_block = temporal_modules(ch[-1:])[0]
            self.up_temporal_blocks = temporal_modules(rev)
        self.up_blocks = nnx.List(
            [
                unet_blocks.UpBlock(
                    rev[min(i + 1, n - 1)],
                    rev[max(i - 1, 0)],
                    rev[i],
                    c.layers_per_block + 1,
                    spec(i, up=True),
                    attention=UP_TYPES[c.up_block_types[i]],
                    upsample=i < n - 1,
                    rngs=rngs,
                    dtype=dtype,
                )
                for i in range(n)
            ]
        )
        self.conv_norm_out = norms.GroupNorm(c.norm_num_groups, ch[0], c.norm_eps, dtype=dtype)
        self.conv_out = conv.conv2d(ch[0], c.out_channels, 3, rngs=rngs, dtype=dtype)

    def _check(self, sample, encoder_hidden_states, low_res, class_labels, num_image_frames) -> None:
        c = self.config
        sample_channels = c.in_channels - c.low_res_channels
        if sample.ndim != 5 or sample.shape[-1] != sample_channels:
            raise ValueError(
                f"UNet3D: sample must be (B, F, H, W, {sample_channels}), got shape {sample.shape}"
            )
        b, f, h, w, _ = sample.shape
        if h % c.downsample_factor or w % c.downsample_factor:
            raise ValueError(
                f"UNet3D: latent H×W={h}×{w} must be multiples of {c.downsample_factor} "
                f"(2^{len(c.block_out_channels) - 1} downsamplers)"
            )
        ctx = encoder_hidden_states
        if (
            ctx.ndim not in (3, 4)
            or ctx.shape[0] != b
            or ctx.shape[-1] != c.cross_attention_dim
            or (ctx.ndim == 4 and ctx.shape[1] != f)
        ):
            raise ValueError(
                f"UNet3D: encoder_hidden_states must be (B={b}, L, {c.cross_attention_dim}) or "
                f"(B={b}, F={f}, L, {c.cross_attention_dim}), got shape {ctx.shape}"
            )
        if not 0 <= num_image_frames <= f:
            raise ValueError(f"UNet3D: num_image_frames={num_image_frames} must be in 0..F={f}")
        if c.low_res_channels == 0 and low_res is not None:
            raise ValueError("UNet3D: low_res is only used by the VSR variant; this model takes no low_res")
        if c.low_res_channels and (low_res is None or low_res.shape != (b, f, h, w, c.low_res_channels)):
            raise ValueError(
                f"UNet3D: low_res must be (B, F, H, W, {c.low_res_channels}) = "
                f"{(b, f, h, w, c.low_res_channels)}, got {None if low_res is None else low_res.shape}"
            )
        if (class_labels is None) != (c.num_class_embeds is None):
            raise ValueError(
                f"UNet3D: class_labels {'missing' if class_labels is None else 'given'} but "
                f"num_class_embeds={c.num_class_embeds}"
            )
        check_noise_level(c, class_labels)

    def _frame_embedding(self, f: int, m: int, dtype) -> jax.Array:
        """``(F, 4·C0)``: the projected sinusoid of indices 0..F−M−1 for the video frames, 0 for images."""
        c = self.config
        sinusoid = embeddings.timestep_embedding(
            jnp.arange(f - m), c.block_out_channels[0], flip_sin_to_cos=c.flip_sin_to_cos
        )
        emb = self.frame_embedding(sinusoid).astype(dtype)
        return jnp.pad(emb, ((0, m), (0, 0)))

    def __call__(
        self,
        sample: jax.Array,
        timesteps: jax.Array,
        encoder_hidden_states: jax.Array,
        *,
        low_res: jax.Array | None = None,
        class_labels: jax.Array | None = None,
        num_image_frames: int = 0,
    ) -> jax.Array:
        self._check(sample, encoder_hidden_states, low_res, class_labels, num_image_frames)
        c = self.config
        b, f = sample.shape[:2]
        m = num_image_frames
        t = jnp.broadcast_to(jnp.asarray(timesteps, jnp.float32).reshape(-1), (b,))
        temb = embeddings.timestep_embedding(
            t, c.block_out_channels[0], flip_sin_to_cos=c.flip_sin_to_cos, freq_shift=c.freq_shift
        )
        temb = self.time_embedding(temb)  # (B, 4·C0)
        if class_labels is not None:
            temb = temb + self.class_embedding(
                jnp.broadcast_to(jnp.asarray(class_labels, jnp.int32).reshape(-1), (b,))
            )
        if c.frame_time_embedding:
            temb = temb[:, None] + self._frame_embedding(f, m, temb.dtype)  # (B, F, 4·C0)
        ctx = encoder_hidden_states
        if ctx.ndim == 3:
            ctx = jnp.broadcast_to(
                ctx[:, None], (b, f, *ctx.shape[1:])
            )  # (B, F, L, D): same text every frame
        ctx = ctx.reshape(b * f, *ctx.shape[2:])  # ((B·F), L, D)

        if low_res is not None:
            sample = jnp.concatenate([sample, low_res.astype(sample.dtype)], axis=-1)  # (B, F, H, W, C_in)
        temporal = c.temporal_modules

        x = conv.apply_per_frame(self.conv_in, sample)  # (B, F, H, W, C0)
        skips = [x]
        for i, block in enumerate(self.down_blocks):
            x, level_skips = block(x, temb, ctx, num_image_frames=m)
            skips += level_skips  # taken before the temporal module
            if temporal:
                x = self.down_temporal_blocks[i](x, temb, num_image_frames=m)
        x = self.mid_block(x, temb, ctx, num_image_frames=m)
        if temporal:
            x = self.mid_temporal_block(x, temb, num_image_frames=m)
        for i, block in enumerate(self.up_blocks):
            n_skips = len(block.resnets)
            x = block(x, skips[-n_skips:], temb, ctx, num_image_frames=m)
            skips = skips[:-n_skips]
            if temporal:
                x = self.up_temporal_blocks[i](x, temb, num_image_frames=m)
        x = nnx.silu(self.conv_norm_out(x, num_image_frames=m))
        return conv.apply_per_frame(self.conv_out, x)


def load_unet(folder: str | os.PathLike) -> UNet3D:
    """A UNet component folder (``config.json`` + ``model.safetensors``) → a ready module."""
    return io.load_component(
        folder, kind="unet", build=lambda d: UNet3D(UNet3DConfig.from_dict(d), rngs=nnx.Rngs(0))
    )


def save_unet(folder: str | os.PathLike, model: UNet3D, *, dtype: str = "float32") -> None:
    io.save_component(folder, model, model.config.to_dict(), kind="unet", dtype=dtype)
