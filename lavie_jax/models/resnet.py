"""ResnetBlock3D: the SD resnet applied to video (spec §1.2).

``h = conv1(silu(GN1(x))) + Linear(silu(temb)); h = conv2(silu(GN2(h))); out = shortcut(x) + h``.
The GroupNorms pool statistics over every video frame of a clip (image frames alone); the convs run
per frame. ``temb`` is one ``(B, T)`` per clip, or ``(B, F, T)`` per frame (UNet3DConfig's
frame_time_embedding). Also serves images ``(B, H, W, C)`` (the VAE), where there is no time embedding.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lavie_jax.models import conv, norms


class ResnetBlock3D(nnx.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        *,
        temb_channels: int | None = None,
        groups: int = 32,
        eps: float = 1e-5,
        rngs: nnx.Rngs,
        dtype=jnp.float32,
    ):
        out_channels = out_channels or in_channels
        self.norm1 = norms.GroupNorm(groups, in_channels, eps, dtype=dtype)
        self.conv1 = conv.conv2d(in_channels, out_channels, 3, rngs=rngs, dtype=dtype)
        self.time_emb_proj = (
            nnx.Linear(temb_channels, out_channels, dtype=dtype, rngs=rngs) if temb_channels else None
        )
        self.norm2 = norms.GroupNorm(groups, out_channels, eps, dtype=dtype)
        self.conv2 = conv.conv2d(out_channels, out_channels, 3, rngs=rngs, dtype=dtype)
        self.conv_shortcut = (
            conv.conv2d(in_channels, out_channels, 1, rngs=rngs, dtype=dtype)
            if in_channels != out_channels
            else None
        )

    def __call__(
        self, x: jax.Array, temb: jax.Array | None = None, *, num_image_frames: int = 0
    ) -> jax.Array:
        h = nnx.silu(self.norm1(x, num_image_frames=num_image_frames))
        h = conv.apply_per_frame(self.conv1, h)
        if self.time_emb_proj is not None:
            if temb is None:
                raise ValueError("ResnetBlock3D: temb is required when temb_channels is set")
            t = self.time_emb_proj(nnx.silu(temb))  # (B, C), or (B, F, C): one per frame
            h = h + t.reshape(*t.shape[:-1], *([1] * (h.ndim - t.ndim)), t.shape[-1])  # over (F,) H, W
        h = nnx.silu(self.norm2(h, num_image_frames=num_image_frames))
        h = conv.apply_per_frame(self.conv2, h)  # dropout is 0 in every LaVie model
        shortcut = x if self.conv_shortcut is None else conv.apply_per_frame(self.conv_shortcut, x)
        return shortcut + h
