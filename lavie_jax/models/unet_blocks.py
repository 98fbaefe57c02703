"""The UNet's levels: down blocks, the mid block and up blocks (spec §1.7; SD's layout).

A down level runs `layers` × (resnet [+ transformer]) and an optional stride-2 conv, handing every
intermediate output to the skip list. An up level runs `layers + 1` × (concatenate the last skip,
resnet [+ transformer]) and an optional nearest ×2 upsampler.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from lavie_jax.models import conv, resnet, transformer


@dataclasses.dataclass(frozen=True)
class LevelSpec:
    """What a level needs to know besides its channel counts."""

    temb_channels: int
    groups: int
    eps: float
    heads: int
    cross_attention_dim: int
    only_cross_attention: bool
    temporal: str | None
    temporal_after_ff: bool
    sparse_causal: bool
    frame_position: bool
    impl: str


def _transformer(channels: int, spec: LevelSpec, rngs, dtype) -> transformer.Transformer3D:
    return transformer.Transformer3D(
        channels,
        spec.heads,
        spec.cross_attention_dim,
        groups=spec.groups,
        only_cross_attention=spec.only_cross_attention,
        temporal=spec.temporal,
        temporal_after_ff=spec.temporal_after_ff,
        sparse_causal=spec.sparse_causal,
        frame_position=spec.frame_position,
        impl=spec.impl,
        rngs=rngs,
        dtype=dtype,
    )


def _resnet(cin: int, cout: int, spec: LevelSpec, rngs, dtype) -> resnet.ResnetBlock3D:
    return resnet.ResnetBlock3D(
        cin, cout, temb_channels=spec.temb_channels, groups=spec.groups, eps=spec.eps, rngs=rngs, dtype=dtype
    )


class DownBlock(nnx.Module):
    def __init__(self, cin, cout, layers, spec: LevelSpec, *, attention: bool, downsample: bool, rngs, dtype):
        self.resnets = nnx.List(
            [_resnet(cin if i == 0 else cout, cout, spec, rngs, dtype) for i in range(layers)]
        )
        if attention:
            self.attentions = nnx.List([_transformer(cout, spec, rngs, dtype) for _ in range(layers)])
        if downsample:
            self.downsamplers = nnx.List([conv.Downsample(cout, rngs=rngs, dtype=dtype)])

    def __call__(self, x, temb, context, *, num_image_frames: int) -> tuple[jax.Array, list[jax.Array]]:
        skips = []
        attentions = getattr(self, "attentions", None)
        for i, block in enumerate(self.resnets):
            x = block(x, temb, num_image_frames=num_image_frames)
            if attentions is not None:
                x = attentions[i](x, context, num_image_frames=num_image_frames)
            skips.append(x)
        if hasattr(self, "downsamplers"):
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class MidBlock(nnx.Module):
    def __init__(self, channels: int, spec: LevelSpec, *, rngs, dtype):
        self.resnets = nnx.List([_resnet(channels, channels, spec, rngs, dtype) for _ in range(2)])
        self.attentions = nnx.List([_transformer(channels, spec, rngs, dtype)])

    def __call__(self, x, temb, context, *, num_image_frames: int) -> jax.Array:
        x = self.resnets[0](x, temb, num_image_frames=num_image_frames)
        x = self.attentions[0](x, context, num_image_frames=num_image_frames)
        return self.resnets[1](x, temb, num_image_frames=num_image_frames)


class UpBlock(nnx.Module):
    def __init__(
        self, cin, prev_out, cout, layers, spec: LevelSpec, *, attention: bool, upsample: bool, rngs, dtype
    ):
        resnets = []
        for i in range(layers):
            skip = cin if i == layers - 1 else cout  # SD's res_skip_channels
            resnets.append(_resnet((prev_out if i == 0 else cout) + skip, cout, spec, rngs, dtype))
        self.resnets = nnx.List(resnets)
        if attention:
            self.attentions = nnx.List([_transformer(cout, spec, rngs, dtype) for _ in range(layers)])
        if upsample:
            self.upsamplers = nnx.List([conv.Upsample(cout, rngs=rngs, dtype=dtype)])

    def __call__(self, x, skips: list[jax.Array], temb, context, *, num_image_frames: int) -> jax.Array:
        attentions = getattr(self, "attentions", None)
        if len(skips) != len(self.resnets):
            raise ValueError(
                f"up block: {len(skips)} skip tensors; expected one per resnet ({len(self.resnets)})"
            )
        for i, (block, skip) in enumerate(zip(self.resnets, reversed(skips))):  # the last skip first
            x = jnp.concatenate([x, skip], axis=-1)  # (B, F, H, W, C + C_skip)
            x = block(x, temb, num_image_frames=num_image_frames)
            if attentions is not None:
                x = attentions[i](x, context, num_image_frames=num_image_frames)
        if hasattr(self, "upsamplers"):
            x = self.upsamplers[0](x)
        return x
