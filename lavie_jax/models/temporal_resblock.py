"""The VSR model's purely temporal resnet, LaVie's ``ResnetBlock3DCNN`` (spec §4.2).

    h = conv1(silu(GN1(x)))           Conv3d kernel (k, 1, 1), zero padding (k//2, 0, 0): frames only
    h = h + Linear(silu(temb))        only with a time embedding (the TemporalModule3D's block)
    h = conv2(silu(GN2(h)))           Conv3d kernel (3, 1, 1), padding (1, 0, 0)
    out = x + h

The GroupNorms (eps 1e-6) pool statistics over all frames of a clip, as nn.GroupNorm on a 5-D tensor
does. Kernels are stored as ``(k, 1, 1, C_in, C_out)``, the channels-last form of PyTorch's
``(C_out, C_in, k, 1, 1)``.

`on_video_frames` runs such a temporal layer on the video frames of a joint image-video clip and
passes the trailing image frames through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from lavie_jax.models import norms


def on_video_frames(fn: Callable[[jax.Array], jax.Array], x: jax.Array, num_image_frames: int) -> jax.Array:
    """Apply ``fn`` to the first ``F − num_image_frames`` frames of ``x (B, F, H, W, C)``; the image
    frames after them are returned untouched."""
    fv = x.shape[1] - num_image_frames
    if fv <= 0:
        return x
    if num_image_frames == 0:
        return fn(x)
    return jnp.concatenate([fn(x[:, :fv]), x[:, fv:]], axis=1)  # (B, F, H, W, C)


def temporal_conv(channels: int, kernel_size: int, *, rngs: nnx.Rngs, dtype=jnp.float32) -> nnx.Conv:
    """A conv over frames only on ``(B, F, H, W, C)``: kernel ``(k, 1, 1)``, zero padding ``k//2`` in time."""
    pad = kernel_size // 2
    return nnx.Conv(
        channels,
        channels,
        (kernel_size, 1, 1),
        padding=((pad, pad), (0, 0), (0, 0)),
        dtype=dtype,
        rngs=rngs,
    )


class TemporalResnetBlock(nnx.Module):
    def __init__(
        self,
        channels: int,
        kernel_size: int = 3,
        *,
        temb_channels: int | None = None,
        groups: int = 32,
        eps: float = 1e-6,
        rngs: nnx.Rngs,
        dtype=jnp.float32,
    ):
        if kernel_size <= 0 or kernel_size % 2 == 0:
            raise ValueError(f"TemporalResnetBlock: kernel_size={kernel_size}; expected a positive odd int")
        self.norm1 = norms.GroupNorm(groups, channels, eps, dtype=dtype)
        self.conv1 = temporal_conv(channels, kernel_size, rngs=rngs, dtype=dtype)
        self.time_emb_proj = (
            nnx.Linear(temb_channels, channels, dtype=dtype, rngs=rngs) if temb_channels else None
        )
        self.norm2 = norms.GroupNorm(groups, channels, eps, dtype=dtype)
        self.conv2 = temporal_conv(channels, 3, rngs=rngs, dtype=dtype)

    def __call__(self, x: jax.Array, temb: jax.Array | None = None) -> jax.Array:
        """``x (B, F, H, W, C)`` (video frames only), ``temb (B, T)`` → ``(B, F, H, W, C)``."""
        h = self.conv1(nnx.silu(self.norm1(x)))  # (B, F, H, W, C)
        if self.time_emb_proj is not None:
            if temb is None:
                raise ValueError("TemporalResnetBlock: temb is required when temb_channels is set")
            t = self.time_emb_proj(nnx.silu(temb))  # (B, C)
            h = h + t[:, None, None, None, :]
        h = self.conv2(nnx.silu(self.norm2(h)))
        return x + h
