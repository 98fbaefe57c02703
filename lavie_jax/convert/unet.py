"""diffusers ``UNet2DConditionModel`` / LaVie UNet state dicts → our NNX `UNet3D`.

LaVie's names are diffusers' plus the temporal ones — base/interpolation ``attn_temp``,
``norm_temp``, ``time_rel_pos_bias``; VSR ``resblock_temporal``, ``attn_temporal``,
``norm_temporal``, ``{down,up}_temporal_blocks.N``, ``mid_temporal_block`` — so one renaming serves
all. Transposes: convs OIHW → HWIO and Conv3d ``(O, I, k, 1, 1)`` → ``(k, 1, 1, I, O)``, Linear and
the 1×1-conv ``proj_in/proj_out`` → ``(in, out)``, norms' weight → scale, embeddings' weight →
embedding. ``rotary_emb.freqs`` buffers (``temporal_rotary_emb.freqs`` too) are checked to be RoPE's
constant and dropped. With ``inflate=True`` a 2-D state dict (SD 1.x, the SD ×4 upscaler) becomes a
3-D UNet whose new temporal layers are freshly initialised with ZERO output projections (weight and
bias: temporal attention ``to_out``, the temporal resnets' ``conv2`` in the transformers, the
TemporalModule3D ``shift_conv``), so it equals the 2-D model frame by frame — the paper's starting
point. (LaVie itself zero-initialises only the attention's ``to_out`` weight and ``shift_conv``.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
from flax import nnx

from lavie_jax.convert import state, torch_layout
from lavie_jax.models import positions, unet3d

_NORM = re.compile(r"(^|\.)(norm\d?|norm_temp|norm_temporal|conv_norm_out)\.weight$")
_EMBEDDING = re.compile(r"(relative_attention_bias|class_embedding)\.weight$")
_FREQS = re.compile(r"rotary_emb\.freqs$")
_TEMPORAL = re.compile(
    r"\.(attn_temp|norm_temp|attn_temporal|norm_temporal|resblock_temporal"
    r"|down_temporal_blocks|mid_temporal_block|up_temporal_blocks)\."
)
# The temporal layers' output projections: zero at inflation, so every new layer starts as identity.
_ZERO_AT_INFLATION = re.compile(
    r"\.(attn_temp\.to_out|attn_temporal\.to_out|resblock_temporal\.conv2|shift_conv)\."
)


def _check_freqs(name: str, value) -> None:
    got = torch_layout.to_numpy(value)
    want = positions.rope_frequencies(32)
    # rtol 1e-2: bfloat16 checkpoints store them rounded by up to 2^-9 ≈ 2e-3 (other formulas are far off).
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-2):
        raise ValueError(f"{name}: RoPE frequencies {got[:4]}… differ from 1/10000^(arange(0,32,2)/32)")


def unet_flat_from_torch(state_dict: Mapping[str, object]) -> dict[str, np.ndarray]:
    flat = {}
    for key, value in state_dict.items():
        if _FREQS.search(key):
            _check_freqs(key, value)
            continue
        if not key.endswith(".weight"):
            flat[key] = torch_layout.to_numpy(value)
            continue
        stem = key.removesuffix("weight")
        if _NORM.search(key):
            flat[stem + "scale"] = torch_layout.to_numpy(value)
        elif _EMBEDDING.search(key):
            flat[stem + "embedding"] = torch_layout.to_numpy(value)
        elif np.ndim(value) in (4, 5) and not re.search(r"proj_(in|out)\.weight$", key):
            flat[stem + "kernel"] = torch_layout.conv_kernel(value)
        else:
            flat[stem + "kernel"] = torch_layout.linear_kernel(value)
    return flat


def inflate(flat: dict[str, np.ndarray], model: unet3d.UNet3D) -> dict[str, np.ndarray]:
    """Fill the temporal parameters a 2-D state dict lacks from `model`'s own initialisation, with the
    temporal layers' output projections zeroed (weight and bias) so each starts as the identity."""
    fresh = state.flat_params(model)
    out = dict(flat)
    for name, value in fresh.items():
        if name in out or not _TEMPORAL.search("." + name):
            continue
        value = np.asarray(value)
        out[name] = np.zeros_like(value) if _ZERO_AT_INFLATION.search("." + name) else value
    return out


def load_unet_from_torch(
    state_dict: Mapping[str, object],
    config: unet3d.UNet3DConfig,
    *,
    inflate_temporal: bool = False,
    seed: int = 0,
) -> unet3d.UNet3D:
    flat = unet_flat_from_torch(state_dict)
    if inflate_temporal:
        model = unet3d.UNet3D(config, rngs=nnx.Rngs(seed))
        flat = inflate(flat, model)
    else:
        model = nnx.eval_shape(lambda: unet3d.UNet3D(config, rngs=nnx.Rngs(seed)))
    state.assign(model, flat, what="UNet")
    return model
