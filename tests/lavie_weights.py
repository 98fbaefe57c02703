"""Random PyTorch-named weights for the UNet tests: LaVie's temporal layers (spec §6 names) added to a
diffusers 2-D UNet's state dict, every tensor random and non-zero (including the parts LaVie
zero-initialises), so no layer can hide behind a zero."""

from __future__ import annotations

import torch

ROPE_FREQS = 1.0 / 10000 ** (torch.arange(0, 32, 2).float() / 32)


def random_torch_weights(shapes: dict, seed: int, scale: float = 0.2) -> dict:
    """float32 tensors of the given shapes; norms' weights around 1."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in shapes.items():
        value = scale * torch.randn(*shape, generator=gen)
        out[name] = (1 + value) if "norm" in name and name.endswith(".weight") else value
    return out


def attention_shapes(prefix: str, c: int, ctx: int | None = None) -> dict:
    ctx, p = ctx or c, f"{prefix}." if prefix else ""
    return {
        f"{p}to_q.weight": (c, c),
        f"{p}to_k.weight": (c, ctx),
        f"{p}to_v.weight": (c, ctx),
        f"{p}to_out.0.weight": (c, c),
        f"{p}to_out.0.bias": (c,),
    }


def norm_shapes(prefix: str, c: int) -> dict:
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,)}


def temporal_resblock_shapes(prefix: str, c: int, kernel: int, temb: int | None = None) -> dict:
    """LaVie's ResnetBlock3DCNN: Conv3d kernels ``(C, C, k, 1, 1)``."""
    shapes = norm_shapes(f"{prefix}.norm1", c) | norm_shapes(f"{prefix}.norm2", c)
    shapes |= {f"{prefix}.conv1.weight": (c, c, kernel, 1, 1), f"{prefix}.conv1.bias": (c,)}
    shapes |= {f"{prefix}.conv2.weight": (c, c, 3, 1, 1), f"{prefix}.conv2.bias": (c,)}
    if temb:
        shapes |= {f"{prefix}.time_emb_proj.weight": (c, temb), f"{prefix}.time_emb_proj.bias": (c,)}
    return shapes


def temporal_module_shapes(prefix: str, c: int, temb: int) -> dict:
    """TemporalModule3D: resblocks_3d_t (k5), resblocks_3d_s (an SD resnet), shift_conv (1×1)."""
    s = f"{prefix}.resblocks_3d_s"
    shapes = temporal_resblock_shapes(f"{prefix}.resblocks_3d_t", c, 5, temb)
    shapes |= norm_shapes(f"{s}.norm1", c) | norm_shapes(f"{s}.norm2", c)
    shapes |= {f"{s}.conv1.weight": (c, c, 3, 3), f"{s}.conv1.bias": (c,)}
    shapes |= {f"{s}.conv2.weight": (c, c, 3, 3), f"{s}.conv2.bias": (c,)}
    shapes |= {f"{s}.time_emb_proj.weight": (c, temb), f"{s}.time_emb_proj.bias": (c,)}
    return shapes | {f"{prefix}.shift_conv.weight": (c, c, 1, 1), f"{prefix}.shift_conv.bias": (c,)}


def _transformer_prefixes(sd: dict) -> list[tuple[str, int]]:
    """``(prefix of 'attentions.N', channels)`` of every spatial transformer in a UNet state dict."""
    keys = [k for k in sd if k.endswith("transformer_blocks.0.attn1.to_q.weight")]
    return [(k.removesuffix(".transformer_blocks.0.attn1.to_q.weight"), sd[k].shape[0]) for k in keys]


def with_interpolation_temporal(sd: dict, seed: int = 1) -> dict:
    """+ ``attn_temp`` (no position signal) and ``norm_temp`` in every transformer block (spec §3)."""
    shapes = {}
    for prefix, c in _transformer_prefixes(sd):
        blk = f"{prefix}.transformer_blocks.0"
        shapes |= attention_shapes(f"{blk}.attn_temp", c) | norm_shapes(f"{blk}.norm_temp", c)
    return {**sd, **random_torch_weights(shapes, seed)}


def with_vsr_temporal(sd: dict, block_out_channels, heads: int, seed: int = 1) -> dict:
    """+ VSR's temporal layers (spec §4.2): ``resblock_temporal`` and ``attn_temporal``/``norm_temporal``
    in every transformer, a TemporalModule3D after every level, RoPE buffers."""
    temb = 4 * block_out_channels[0]
    shapes = {}
    for prefix, c in _transformer_prefixes(sd):
        blk = f"{prefix}.transformer_blocks.0"
        shapes |= temporal_resblock_shapes(f"{prefix}.resblock_temporal", c, 3)
        shapes |= attention_shapes(f"{blk}.attn_temporal", c) | norm_shapes(f"{blk}.norm_temporal", c)
        shapes[f"{blk}.attn_temporal.time_rel_pos_bias.relative_attention_bias.weight"] = (32, heads)
    for i, c in enumerate(block_out_channels):
        shapes |= temporal_module_shapes(f"down_temporal_blocks.{i}", c, temb)
    for i, c in enumerate(reversed(block_out_channels)):
        shapes |= temporal_module_shapes(f"up_temporal_blocks.{i}", c, temb)
    shapes |= temporal_module_shapes("mid_temporal_block", block_out_channels[-1], temb)
    out = {**sd, **random_torch_weights(shapes, seed), "temporal_rotary_emb.freqs": ROPE_FREQS.clone()}
    for prefix, _ in _transformer_prefixes(sd):
        out[f"{prefix}.transformer_blocks.0.attn_temporal.rotary_emb.freqs"] = ROPE_FREQS.clone()
    return out
