"""Normalisation layers with LaVie's statistics conventions (spec §1.2).

LaVie applies ``nn.GroupNorm`` directly to 5-D ``(B, C, F, H, W)`` tensors in its resnets, so the
statistics of a video clip span **all of its frames**. Joint image-video batches append M independent
images after the video frames along F; those must not leak into the clip's statistics, so each image
frame is normalised on its own.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


def _check_groups(num_groups: int, num_channels: int) -> None:
    if num_groups <= 0 or num_channels % num_groups:
        raise ValueError(
            f"GroupNorm: num_channels={num_channels} must be divisible by num_groups={num_groups}"
        )


class GroupNorm(nnx.Module):
    """GroupNorm over channels-last images ``(B, H, W, C)`` or videos ``(B, F, H, W, C)``.

    For videos, ``per_frame=False`` (resnets, ``conv_norm_out``) pools the statistics of the first
    ``F - num_image_frames`` frames; the trailing image frames are normalised one by one.
    ``per_frame=True`` (the transformer's input norm) normalises every frame on its own.
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float, *, dtype=jnp.float32):
        _check_groups(num_groups, num_channels)
        self.num_groups = num_groups
        self.eps = eps
        self.dtype = dtype
        self.scale = nnx.Param(jnp.ones((num_channels,), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((num_channels,), jnp.float32))

    def __call__(self, x: jax.Array, *, num_image_frames: int = 0, per_frame: bool = False) -> jax.Array:
        if x.ndim == 4:
            x = x[:, None]  # (B, 1, H, W, C): an image is a one-frame clip
            return self(x, per_frame=True)[:, 0]
        if x.ndim != 5:
            raise ValueError(f"GroupNorm: x must be (B, H, W, C) or (B, F, H, W, C), got shape {x.shape}")
        b, f, h, w, c = x.shape
        g = self.num_groups
        xg = x.astype(jnp.float32).reshape(b, f, h, w, g, c // g)  # (B, F, H, W, G, C/G)
        n_video = f if per_frame else f - num_image_frames

        def pool(stat):  # stat: (B, F, 1, 1, G, 1) per-frame moments → clip moments for video frames
            if per_frame or n_video <= 1:
                return stat
            video = jnp.mean(stat[:, :n_video], axis=1, keepdims=True)  # equal frame sizes: mean of means
            return jnp.concatenate([jnp.broadcast_to(video, stat[:, :n_video].shape), stat[:, n_video:]], 1)

        mean = pool(jnp.mean(xg, axis=(2, 3, 5), keepdims=True))
        var = pool(jnp.mean(jnp.square(xg - mean), axis=(2, 3, 5), keepdims=True))
        y = ((xg - mean) * jax.lax.rsqrt(var + self.eps)).reshape(b, f, h, w, c)
        return (y * self.scale[...] + self.bias[...]).astype(self.dtype)


class LayerNorm(nnx.Module):
    """``nn.LayerNorm(dim)`` over the last axis (eps 1e-5, affine), computed in float32."""

    def __init__(self, dim: int, eps: float = 1e-5, *, dtype=jnp.float32):
        self.eps = eps
        self.dtype = dtype
        self.scale = nnx.Param(jnp.ones((dim,), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((dim,), jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        mean = jnp.mean(x32, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
        y = (x32 - mean) * jax.lax.rsqrt(var + self.eps)
        return (y * self.scale[...] + self.bias[...]).astype(self.dtype)
