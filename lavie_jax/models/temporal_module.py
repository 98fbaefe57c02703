"""The VSR model's ``TemporalModule3D`` (spec §4.2 item 3), after every down, mid and up block.

    h = resblocks_3d_t(x, temb)       temporal resnet: conv (5,1,1), time embedding, conv (3,1,1)
    h = resblocks_3d_s(h, temb)       the SD resnet per frame (3×3 convs), GroupNorm eps 1e-6
    out = x + shift_conv(h)           1×1 per-frame conv, zero-initialised: the module starts as identity

Every GroupNorm pools statistics over the clip's frames. LaVie's released configuration has no
attention inside (``attention_block_types ["", ""]``), no scale-shift, no video condition and no
deformable warping, so none of those exist here. Image frames of a joint batch pass unchanged.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lavie_jax.models import conv, resnet, temporal_resblock


class TemporalModule3D(nnx.Module):
    def __init__(
        self, channels: int, temb_channels: int, *, groups: int = 32, rngs: nnx.Rngs, dtype=jnp.float32
    ):
        self.resblocks_3d_t = temporal_resblock.TemporalResnetBlock(
            channels, 5, temb_channels=temb_channels, groups=groups, eps=1e-6, rngs=rngs, dtype=dtype
        )
        self.resblocks_3d_s = resnet.ResnetBlock3D(
            channels, channels, temb_channels=temb_channels, groups=groups, eps=1e-6, rngs=rngs, dtype=dtype
        )
        self.shift_conv = nnx.Conv(
            channels,
            channels,
            (1, 1),
            kernel_init=nnx.initializers.zeros,
            bias_init=nnx.initializers.zeros,
            dtype=dtype,
            rngs=rngs,
        )

    def __call__(self, x: jax.Array, temb: jax.Array, *, num_image_frames: int = 0) -> jax.Array:
        """``x (B, F, H, W, C)``, ``temb (B, T)`` → ``(B, F, H, W, C)``."""

        def video(v):  # (B, Fv, H, W, C)
            h = self.resblocks_3d_t(v, temb)
            h = self.resblocks_3d_s(h, temb)
            return v + conv.apply_per_frame(self.shift_conv, h)

        return temporal_resblock.on_video_frames(video, x, num_image_frames)
