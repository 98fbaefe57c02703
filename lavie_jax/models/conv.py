"""Per-frame ("inflated") 2-D convolutions and the spatial down/up-samplers (spec §1.1).

LaVie's ``InflatedConv3d`` folds frames into the batch and runs a plain Conv2d: there is no temporal
mixing. Channels-last: videos ``(B, F, H, W, C)``, images ``(B, H, W, C)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

Padding = int | tuple[tuple[int, int], tuple[int, int]]


def conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    *,
    stride: int = 1,
    padding: Padding | None = None,
    rngs: nnx.Rngs,
    dtype=jnp.float32,
) -> nnx.Conv:
    """A 2-D conv with PyTorch's symmetric ``padding=k//2`` by default (apply with `apply_per_frame`)."""
    if padding is None:
        padding = kernel_size // 2
    if isinstance(padding, int):
        padding = ((padding, padding), (padding, padding))
    return nnx.Conv(
        in_channels,
        out_channels,
        (kernel_size, kernel_size),
        strides=(stride, stride),
        padding=padding,
        dtype=dtype,
        rngs=rngs,
    )


def apply_per_frame(layer: nnx.Module, x: jax.Array) -> jax.Array:
    """Run a 2-D layer on every frame of ``(B, F, H, W, C)`` (or directly on ``(B, H, W, C)``)."""
    if x.ndim == 4:
        return layer(x)
    b, f = x.shape[:2]
    y = layer(x.reshape(b * f, *x.shape[2:]))  # (B*F, H, W, C): frames are independent images
    return y.reshape(b, f, *y.shape[1:])  # (B, F, H', W', C')


class Downsample(nnx.Module):
    """3×3 stride-2 conv. UNet: padding 1 on each side; VAE: pad right/bottom by one, no other padding."""

    def __init__(self, channels: int, *, asymmetric_padding: bool = False, rngs: nnx.Rngs, dtype=jnp.float32):
        padding = ((0, 1), (0, 1)) if asymmetric_padding else 1
        self.conv = conv2d(channels, channels, 3, stride=2, padding=padding, rngs=rngs, dtype=dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        return apply_per_frame(self.conv, x)


class Upsample(nnx.Module):
    """Nearest-neighbour ×2 in space only (``scale_factor=[1, 2, 2]``), then a 3×3 conv."""

    def __init__(self, channels: int, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.conv = conv2d(channels, channels, 3, rngs=rngs, dtype=dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jnp.repeat(jnp.repeat(x, 2, axis=-3), 2, axis=-2)  # (..., 2H, 2W, C)
        return apply_per_frame(self.conv, x)
