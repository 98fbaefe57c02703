"""The spatial transformer of the video UNet (spec §1.4) and its block (spec §2.2).

``Transformer3D``: per-frame GroupNorm (eps 1e-6) → proj_in → one `BasicTransformerBlock` → proj_out
→ residual. The block runs, in the base model's order (spec §2.2):

    x = attn1(LN1(x)) + x           spatial self-attention within each frame (text cross-attention
                                    instead when ``only_cross_attention``)
    x = attn2(LN2(x), text) + x     text cross-attention
    x = attn_temp(LN_temp(x)) + x   each spatial location attends over the clip's frames
    x = ff(LN3(x)) + x

Joint image-video input: the last ``num_image_frames`` frames of a clip are independent images, and
they skip the temporal attention entirely.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lavie_jax.models import attention, feedforward, norms, temporal_attention

TEMPORAL_KINDS = (None, "rope_relpos")


class BasicTransformerBlock(nnx.Module):
    def __init__(
        self,
        dim: int,
        heads: int,
        cross_attention_dim: int,
        *,
        only_cross_attention: bool = False,
        temporal: str | None = "rope_relpos",
        impl: str = "xla",
        rngs: nnx.Rngs,
        dtype=jnp.float32,
    ):
        if temporal not in TEMPORAL_KINDS:
            raise ValueError(f"temporal={temporal!r}; expected one of {TEMPORAL_KINDS}")
        self.only_cross_attention = only_cross_attention
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
        if temporal == "rope_relpos":
            self.attn_temp = temporal_attention.TemporalAttention(dim, heads, rngs=rngs, dtype=dtype)
            self.norm_temp = norms.LayerNorm(dim, dtype=dtype)
        self.ff = feedforward.FeedForward(dim, rngs=rngs, dtype=dtype)
        self.norm3 = norms.LayerNorm(dim, dtype=dtype)

    def temporal_mix(self, x: jax.Array, batch: int, num_image_frames: int) -> jax.Array:
        """``x ((B·F), HW, C)``: residual temporal attention over the B clips' video frames."""
        bf, hw, c = x.shape
        f = bf // batch
        fv = f - num_image_frames
        if fv <= 0:
            return x
        clip = x.reshape(batch, f, hw, c)  # (B, F, HW, C)
        video = clip[:, :fv].transpose(0, 2, 1, 3).reshape(batch * hw, fv, c)  # ((B·HW), Fv, C)
        video = video + self.attn_temp(self.norm_temp(video))
        video = video.reshape(batch, hw, fv, c).transpose(0, 2, 1, 3)  # (B, Fv, HW, C)
        return jnp.concatenate([video, clip[:, fv:]], axis=1).reshape(bf, hw, c)

    def __call__(
        self, x: jax.Array, context: jax.Array, *, batch: int, num_image_frames: int = 0
    ) -> jax.Array:
        """``x ((B·F), HW, C)``, ``context ((B·F), L, D)`` → ``((B·F), HW, C)``."""
        h = self.norm1(x)
        x = x + self.attn1(h, context if self.only_cross_attention else None)
        x = x + self.attn2(self.norm2(x), context)
        if self.temporal is not None:
            x = self.temporal_mix(x, batch, num_image_frames)
        return x + self.ff(self.norm3(x))


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
        impl: str = "xla",
        rngs: nnx.Rngs,
        dtype=jnp.float32,
    ):
        self.norm = norms.GroupNorm(groups, channels, 1e-6, dtype=dtype)
        self.proj_in = nnx.Linear(channels, channels, dtype=dtype, rngs=rngs)
        block = BasicTransformerBlock(
            channels,
            heads,
            cross_attention_dim,
            only_cross_attention=only_cross_attention,
            temporal=temporal,
            impl=impl,
            rngs=rngs,
            dtype=dtype,
        )
        self.transformer_blocks = nnx.List([block])
        self.proj_out = nnx.Linear(channels, channels, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, context: jax.Array, *, num_image_frames: int = 0) -> jax.Array:
        """``x (B, F, H, W, C)``, ``context ((B·F), L, D)`` → ``(B, F, H, W, C)``."""
        b, f, h, w, c = x.shape
        tokens = self.norm(x, per_frame=True).reshape(b * f, h * w, c)  # ((B·F), HW, C), row-major tokens
        tokens = self.proj_in(tokens)
        for block in self.transformer_blocks:
            tokens = block(tokens, context, batch=b, num_image_frames=num_image_frames)
        return x + self.proj_out(tokens).reshape(b, f, h, w, c)
