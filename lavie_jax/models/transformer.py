"""The spatial transformer of the video UNet (spec §1.4) and its block (spec §2.2, §3.2, §4.2).

``Transformer3D``: per-frame GroupNorm (eps 1e-6) → proj_in → one `BasicTransformerBlock` → proj_out
→ residual. The block runs, in the base model's order (spec §2.2):

    x = attn1(LN1(x)) + x           spatial self-attention within each frame (text cross-attention
                                    instead when ``only_cross_attention``; sparse-causal over frames
                                    0 and i−1 when ``sparse_causal``, spec §3.2)
    x = attn2(LN2(x), text) + x     text cross-attention
    x = attn_temp(LN_temp(x)) + x   each spatial location attends over the clip's frames
    x = ff(LN3(x)) + x

``temporal_after_ff`` moves the temporal attention after the feed-forward (the interpolation model).
``frame_position`` (not in LaVie) adds the sinusoidal embedding of each video frame's index 0..F−1
to the temporal attention's normed input.
The kinds of temporal layers (`TEMPORAL_KINDS`):

* ``None``               — none: SD's 2-D transformer on every frame.
* ``"rope_relpos"``      — base: ``attn_temp`` with RoPE and a relative-position bias, ``norm_temp``.
* ``"plain"``            — interpolation: ``attn_temp`` with no position signal, ``norm_temp``.
* ``"conv_rope_relpos"`` — VSR: ``attn_temporal`` (RoPE + bias) and ``norm_temporal``, plus a
  temporal resnet ``resblock_temporal`` before the transformer's GroupNorm; the transformer's
  residual is taken after it.

Joint image-video input: the last ``num_image_frames`` frames of a clip are independent images, and
they skip every temporal layer (and attend to themselves only in a sparse-causal ``attn1``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lavie_jax.models import (
    attention,
    embeddings,
    feedforward,
    norms,
    sparse_causal_attention,
    temporal_attention,
    temporal_resblock,
)

TEMPORAL_KINDS = (None, "rope_relpos", "plain", "conv_rope_relpos")


class BasicTransformerBlock(nnx.Module):
    def __init__(
        self,
        dim: int,
        heads: int,
        cross_attention_dim: int,
        *,
        only_cross_attention: bool = False,
        temporal: str | None = "rope_relpos",
        temporal_after_ff: bool = False,
        sparse_causal: bool = False,
        frame_position: bool = False,
        impl: str = "xla",
        rngs: nnx.Rngs,
        dtype=jnp.float32,
    ):
        if temporal not in TEMPORAL_KINDS:
            raise ValueError(f"temporal={temporal!r}; expected one of {TEMPORAL_KINDS}")
        if sparse_causal and only_cross_attention:
            raise ValueError("sparse_causal=True needs self-attention in attn1 (only_cross_attention=False)")
        self.only_cross_attention = only_cross_attention
        self.sparse_causal = sparse_causal
        self.temporal_after_ff = temporal_after_ff
        self.frame_position = frame_position
        if sparse_causal:
            self.attn1 = sparse_causal_attention.SparseCausalAttention(
                dim, heads, impl=impl, rngs=rngs, dtype=dtype
            )
        else:
            attn1_context = cross_attention_dim if only_cross_attention else None
            self.attn1 = attention.Attention(
                dim, heads, context_dim=attn1_context, impl=impl, rngs=rngs, dtype=dtype
            )
        self.norm1 = norms.LayerNorm(dim, dtype=dtype)
        self.attn2 = attention.Attention(
            dim, heads, context_dim=cross_attention_dim, impl=impl, rngs=rngs, dtype=dtype
        )
        self.norm2 = norms.LayerNorm(dim, dtype=dtype)
        self.temporal = temporal
        if temporal in ("rope_relpos", "plain"):
            positions = temporal == "rope_relpos"
            self.attn_temp = temporal_attention.TemporalAttention(
                dim,
                heads,
                rotary_dim=32 if positions else None,
                relative_position=positions,
                rngs=rngs,
                dtype=dtype,
            )
            self.norm_temp = norms.LayerNorm(dim, dtype=dtype)
        elif temporal == "conv_rope_relpos":
            self.attn_temporal = temporal_attention.TemporalAttention(dim, heads, rngs=rngs, dtype=dtype)
            self.norm_temporal = norms.LayerNorm(dim, dtype=dtype)
        self.ff = feedforward.FeedForward(dim, rngs=rngs, dtype=dtype)
        self.norm3 = norms.LayerNorm(dim, dtype=dtype)

    def temporal_mix(self, x: jax.Array, batch: int, num_image_frames: int) -> jax.Array:
        """``x ((B·F), HW, C)``: residual temporal attention over the B clips' video frames."""
        bf, hw, c = x.shape
        f = bf // batch
        fv = f - num_image_frames
        if fv <= 0:
            return x
        if self.temporal == "conv_rope_relpos":
            norm, attn = self.norm_temporal, self.attn_temporal
        else:
            norm, attn = self.norm_temp, self.attn_temp
        clip = x.reshape(batch, f, hw, c)  # (B, F, HW, C)
        video = clip[:, :fv].transpose(0, 2, 1, 3).reshape(batch * hw, fv, c)  # ((B·HW), Fv, C)
        h = norm(video)
        if self.frame_position:  # absolute frame index, sinusoidal, [cos, sin] (not in LaVie)
            h = h + embeddings.timestep_embedding(jnp.arange(fv), c).astype(h.dtype)[None]
        video = video + attn(h)
        video = video.reshape(batch, hw, fv, c).transpose(0, 2, 1, 3)  # (B, Fv, HW, C)
        return jnp.concatenate([video, clip[:, fv:]], axis=1).reshape(bf, hw, c)

    def __call__(
        self, x: jax.Array, context: jax.Array, *, batch: int, num_image_frames: int = 0
    ) -> jax.Array:
        """``x ((B·F), HW, C)``, ``context ((B·F), L, D)`` → ``((B·F), HW, C)``."""
        h = self.norm1(x)
        if self.sparse_causal:
            x = x + self.attn1(h, num_frames=x.shape[0] // batch, num_image_frames=num_image_frames)
        else:
            x = x + self.attn1(h, context if self.only_cross_attention else None)
        x = x + self.attn2(self.norm2(x), context)
        if self.temporal is not None and not self.temporal_after_ff:
            x = self.temporal_mix(x, batch, num_image_frames)
        x = x + self.ff(self.norm3(x))
        if self.temporal is not None and self.temporal_after_ff:
            x = self.temporal_mix(x, batch, num_image_frames)
        return x


class Transformer3D(nnx.Module):
    """``norm → proj_in → transformer_blocks.0 → proj_out → + residual`` on every frame.

    ``proj_in/proj_out`` are 1×1 convs in SD 1.x and Linear layers with ``use_linear_projection``;
    on channels-last tokens both are the same dense map, stored here as a Dense kernel ``(C, C)``.
    """

    def __init__(
        self,
        channels: int,
        heads: int,
        cross_attention_dim: int,
        *,
        groups: int = 32,
        only_cross_attention: bool = False,
        temporal: str | None = "rope_relpos",
        temporal_after_ff: bool = False,
        sparse_causal: bool = False,
        frame_position: bool = False,
        impl: str = "xla",
        rngs: nnx.Rngs,
        dtype=jnp.float32,
    ):
        if temporal == "conv_rope_relpos":
            self.resblock_temporal = temporal_resblock.TemporalResnetBlock(
                channels, 3, groups=groups, eps=1e-6, rngs=rngs, dtype=dtype
            )
        self.norm = norms.GroupNorm(groups, channels, 1e-6, dtype=dtype)
        self.proj_in = nnx.Linear(channels, channels, dtype=dtype, rngs=rngs)
        block = BasicTransformerBlock(
            channels,
            heads,
            cross_attention_dim,
            only_cross_attention=only_cross_attention,
            temporal=temporal,
            temporal_after_ff=temporal_after_ff,
            sparse_causal=sparse_causal,
            frame_position=frame_position,
            impl=impl,
            rngs=rngs,
            dtype=dtype,
        )
        self.transformer_blocks = nnx.List([block])
        self.proj_out = nnx.Linear(channels, channels, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, context: jax.Array, *, num_image_frames: int = 0) -> jax.Array:
        """``x (B, F, H, W, C)``, ``context ((B·F), L, D)`` → ``(B, F, H, W, C)``."""
        b, f, h, w, c = x.shape
        if hasattr(self, "resblock_temporal"):
            x = temporal_resblock.on_video_frames(self.resblock_temporal, x, num_image_frames)
        tokens = self.norm(x, per_frame=True).reshape(b * f, h * w, c)  # ((B·F), HW, C), row-major tokens
        tokens = self.proj_in(tokens)
        for block in self.transformer_blocks:
            tokens = block(tokens, context, batch=b, num_image_frames=num_image_frames)
        return x + self.proj_out(tokens).reshape(b, f, h, w, c)
