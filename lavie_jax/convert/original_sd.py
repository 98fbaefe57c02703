"""Original (CompVis / LDM) single-file Stable Diffusion checkpoints → diffusers-layout state dicts.

A ``.ckpt`` / ``.safetensors`` file of SD 1.x holds three models under prefixes:
``model.diffusion_model.*`` (UNet), ``first_stage_model.*`` (VAE) and ``cond_stage_model.transformer.*``
(CLIP text encoder). `split_checkpoint` renames them to diffusers' names, so the diffusers-layout
converters (`convert.unet`, `convert.vae`, `convert.clip`) do the rest. Renaming only: no tensor is
changed here. Keys that are known not to be weights (DDPM buffers, the optional ``model_ema.*`` copy)
are dropped; any other unknown key is an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model.transformer."

# Buffers of the LDM DDPM wrapper and the optional EMA copy: not weights of any component.
KNOWN_UNUSED = re.compile(
    r"^(model_ema\..*|betas|alphas_cumprod|alphas_cumprod_prev|sqrt_alphas_cumprod|sqrt_one_minus_alphas_cumprod|"
    r"log_one_minus_alphas_cumprod|sqrt_recip_alphas_cumprod|sqrt_recipm1_alphas_cumprod|posterior_variance|"
    r"posterior_log_variance_clipped|posterior_mean_coef1|posterior_mean_coef2|logvar|lvlb_weights)$"
)

_LDM_RESNET = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "skip_connection": "conv_shortcut",
}


def _resnet(rest: str) -> str:
    for old, new in _LDM_RESNET.items():
        if rest.startswith(old + "."):
            return new + rest[len(old) :]
    raise KeyError(rest)


def unet_key(key: str, layers_per_block: int = 2) -> str:
    """One LDM UNet key (without prefix) → its diffusers name. Raises KeyError when unknown."""
    per_level = layers_per_block + 1
    fixed = {
        "time_embed.0.": "time_embedding.linear_1.",
        "time_embed.2.": "time_embedding.linear_2.",
        "input_blocks.0.0.": "conv_in.",
        "out.0.": "conv_norm_out.",
        "out.2.": "conv_out.",
        "label_emb.": "class_embedding.",
    }
    for old, new in fixed.items():
        if key.startswith(old):
            return new + key[len(old) :]
    if m := re.match(r"input_blocks\.(\d+)\.(\d+)\.(.*)", key):
        i, part, rest = int(m[1]), int(m[2]), m[3]
        level, j = divmod(i - 1, per_level)
        if rest.startswith("op."):  # the level's stride-2 conv sits in the last slot of the level
            return f"down_blocks.{level}.downsamplers.0.conv.{rest[3:]}"
        if part == 0:
            return f"down_blocks.{level}.resnets.{j}.{_resnet(rest)}"
        return f"down_blocks.{level}.attentions.{j}.{rest}"
    if m := re.match(r"middle_block\.(\d+)\.(.*)", key):
        part, rest = int(m[1]), m[2]
        if part == 1:
            return f"mid_block.attentions.0.{rest}"
        return f"mid_block.resnets.{part // 2}.{_resnet(rest)}"
    if m := re.match(r"output_blocks\.(\d+)\.(\d+)\.(.*)", key):
        i, part, rest = int(m[1]), int(m[2]), m[3]
        level, j = divmod(i, per_level)
        if part == 0:
            return f"up_blocks.{level}.resnets.{j}.{_resnet(rest)}"
        if rest.startswith("conv."):  # Upsample: slot 1 without attention, slot 2 with it
            return f"up_blocks.{level}.upsamplers.0.{rest}"
        return f"up_blocks.{level}.attentions.{j}.{rest}"
    raise KeyError(key)


def vae_key(key: str, num_levels: int) -> str:
    """One LDM VAE key (without prefix) → its diffusers name. Raises KeyError when unknown."""
    renames = [
        (r"^(encoder|decoder)\.norm_out\.", r"\1.conv_norm_out."),
        (r"^(encoder|decoder)\.mid\.block_(\d)\.", lambda m: f"{m[1]}.mid_block.resnets.{int(m[2]) - 1}."),
        (r"^(encoder|decoder)\.mid\.attn_1\.norm\.", r"\1.mid_block.attentions.0.group_norm."),
        (r"^(encoder|decoder)\.mid\.attn_1\.([qkv])\.", r"\1.mid_block.attentions.0.to_\2."),
        (r"^(encoder|decoder)\.mid\.attn_1\.proj_out\.", r"\1.mid_block.attentions.0.to_out.0."),
        (r"^encoder\.down\.(\d+)\.block\.(\d+)\.", r"encoder.down_blocks.\1.resnets.\2."),
        (r"^encoder\.down\.(\d+)\.downsample\.conv\.", r"encoder.down_blocks.\1.downsamplers.0.conv."),
        # The LDM decoder numbers its levels from the bottom; diffusers from the top.
        (
            r"^decoder\.up\.(\d+)\.block\.(\d+)\.",
            lambda m: f"decoder.up_blocks.{num_levels - 1 - int(m[1])}.resnets.{m[2]}.",
        ),
        (
            r"^decoder\.up\.(\d+)\.upsample\.conv\.",
            lambda m: f"decoder.up_blocks.{num_levels - 1 - int(m[1])}.upsamplers.0.conv.",
        ),
    ]
    for pattern, repl in renames:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new.replace(".nin_shortcut.", ".conv_shortcut.")
    if re.match(r"^(encoder|decoder)\.(conv_in|conv_out)\.|^(quant_conv|post_quant_conv)\.", key):
        return key
    raise KeyError(key)


def split_checkpoint(
    state_dict: Mapping[str, object], *, layers_per_block: int = 2
) -> tuple[dict[str, object], dict[str, object], dict[str, object]]:
    """``(unet, vae, text_encoder)`` state dicts in diffusers / transformers naming."""
    unet, vae, text, unknown = {}, {}, {}, []
    num_levels = len({k.split(".")[3] for k in state_dict if k.startswith(VAE_PREFIX + "decoder.up.")})
    for key, value in state_dict.items():
        try:
            if key.startswith(UNET_PREFIX):
                unet[unet_key(key[len(UNET_PREFIX) :], layers_per_block)] = value
            elif key.startswith(VAE_PREFIX):
                vae[vae_key(key[len(VAE_PREFIX) :], num_levels)] = value
            elif key.startswith(TEXT_PREFIX):
                text[key[len(TEXT_PREFIX) :]] = value
            elif not KNOWN_UNUSED.match(key):
                unknown.append(key)
        except KeyError:
            unknown.append(key)
    if unknown:
        shown = "\n    ".join(sorted(unknown)[:50])
        raise ValueError(f"original SD checkpoint: {len(unknown)} unrecognised key(s):\n    {shown}")
    for name, part in (
        ("UNet (model.diffusion_model.*)", unet),
        ("VAE (first_stage_model.*)", vae),
        ("text encoder (cond_stage_model.transformer.*)", text),
    ):
        if not part:
            raise ValueError(f"original SD checkpoint: no {name} weights found")
    return unet, vae, text
