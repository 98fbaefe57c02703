"""Original (LDM) single-file key layout → diffusers names, checked against diffusers' own converter.

The test writes the LDM layout from a tiny diffusers model; diffusers' `convert_ldm_*_checkpoint`
(an implementation nobody here wrote) must map it back to the original keys, which proves the file
is genuinely in the original layout. Our `split_checkpoint` must then recover the same keys.
"""

import re

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders import single_file_utils as sfu

from lavie_jax.convert import original_sd

UNET_CONFIG = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    block_out_channels=(32, 64),
    layers_per_block=2,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=16,
    attention_head_dim=2,
    norm_num_groups=8,
)
VAE_CONFIG = dict(
    block_out_channels=(16, 32, 32),
    down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3,
    latent_channels=4,
    layers_per_block=1,
    norm_num_groups=8,
)
LDM_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}


def to_ldm_unet(key: str, attention_levels: set[int]) -> str:
    """diffusers UNet key → LDM key (test-side writer, validated by diffusers below)."""

    def resnet(rest):
        head, tail = rest.split(".", 1)
        return f"{LDM_RESNET[head]}.{tail}"

    simple = {
        "time_embedding.linear_1.": "time_embed.0.",
        "time_embedding.linear_2.": "time_embed.2.",
        "conv_in.": "input_blocks.0.0.",
        "conv_norm_out.": "out.0.",
        "conv_out.": "out.2.",
    }
    for new, old in simple.items():
        if key.startswith(new):
            return old + key[len(new) :]
    if m := re.match(r"down_blocks\.(\d)\.resnets\.(\d)\.(.*)", key):
        return f"input_blocks.{1 + 3 * int(m[1]) + int(m[2])}.0.{resnet(m[3])}"
    if m := re.match(r"down_blocks\.(\d)\.attentions\.(\d)\.(.*)", key):
        return f"input_blocks.{1 + 3 * int(m[1]) + int(m[2])}.1.{m[3]}"
    if m := re.match(r"down_blocks\.(\d)\.downsamplers\.0\.conv\.(.*)", key):
        return f"input_blocks.{3 + 3 * int(m[1])}.0.op.{m[2]}"
    if m := re.match(r"mid_block\.resnets\.(\d)\.(.*)", key):
        return f"middle_block.{2 * int(m[1])}.{resnet(m[2])}"
    if m := re.match(r"mid_block\.attentions\.0\.(.*)", key):
        return f"middle_block.1.{m[1]}"
    if m := re.match(r"up_blocks\.(\d)\.resnets\.(\d)\.(.*)", key):
        return f"output_blocks.{3 * int(m[1]) + int(m[2])}.0.{resnet(m[3])}"
    if m := re.match(r"up_blocks\.(\d)\.attentions\.(\d)\.(.*)", key):
        return f"output_blocks.{3 * int(m[1]) + int(m[2])}.1.{m[3]}"
    if m := re.match(r"up_blocks\.(\d)\.upsamplers\.0\.conv\.(.*)", key):
        slot = 2 if int(m[1]) in attention_levels else 1
        return f"output_blocks.{3 * int(m[1]) + 2}.{slot}.conv.{m[2]}"
    raise KeyError(key)


def to_ldm_vae(key: str, levels: int) -> str:
    key = key.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
    key = re.sub(r"encoder\.down_blocks\.(\d)\.resnets", r"encoder.down.\1.block", key)
    key = re.sub(r"encoder\.down_blocks\.(\d)\.downsamplers\.0", r"encoder.down.\1.downsample", key)
    key = re.sub(
        r"decoder\.up_blocks\.(\d)\.resnets", lambda m: f"decoder.up.{levels - 1 - int(m[1])}.block", key
    )
    key = re.sub(
        r"decoder\.up_blocks\.(\d)\.upsamplers\.0",
        lambda m: f"decoder.up.{levels - 1 - int(m[1])}.upsample",
        key,
    )
    key = re.sub(r"mid_block\.resnets\.(\d)", lambda m: f"mid.block_{int(m[1]) + 1}", key)
    for new, old in (
        ("group_norm", "norm"),
        ("to_q", "q"),
        ("to_k", "k"),
        ("to_v", "v"),
        ("to_out.0", "proj_out"),
    ):
        key = key.replace(f"mid_block.attentions.0.{new}.", f"mid.attn_1.{old}.")
    return key


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**UNET_CONFIG).state_dict()
    vae = AutoencoderKL(**VAE_CONFIG).state_dict()
    return unet, vae


def make_ldm(unet, vae, text):
    ckpt = {f"model.diffusion_model.{to_ldm_unet(k, {1})}": v for k, v in unet.items()}
    ckpt |= {f"first_stage_model.{to_ldm_vae(k, 3)}": v for k, v in vae.items()}
    ckpt |= {f"cond_stage_model.transformer.{k}": v for k, v in text.items()}
    ckpt["alphas_cumprod"] = torch.ones(10)
    return ckpt


def test_diffusers_agrees_the_test_file_is_original_layout(models):
    unet, vae = models
    ckpt = make_ldm(unet, vae, {})
    back = sfu.convert_ldm_unet_checkpoint(ckpt, dict(UNET_CONFIG))
    assert set(back) == set(unet)
    assert all(torch.equal(back[k], unet[k]) for k in unet)
    back_vae = sfu.convert_ldm_vae_checkpoint(ckpt, dict(VAE_CONFIG))
    assert set(back_vae) == set(vae)
    for k in vae:  # diffusers reshapes the 1x1-conv attention weights to Linear; compare values
        np.testing.assert_array_equal(back_vae[k].numpy().squeeze(), vae[k].numpy().squeeze())


def test_split_checkpoint_recovers_diffusers_names(models):
    unet, vae = models
    text = {"text_model.embeddings.token_embedding.weight": torch.zeros(3, 2)}
    u, v, t = original_sd.split_checkpoint(make_ldm(unet, vae, text))
    assert set(u) == set(unet) and all(u[k] is unet[k] for k in unet)
    assert set(v) == set(vae) and all(v[k] is vae[k] for k in vae)
    assert t == text


def test_unknown_key_is_listed(models):
    unet, vae = models
    ckpt = make_ldm(unet, vae, {"a": torch.zeros(1)})
    ckpt["model.diffusion_model.something_new.weight"] = torch.zeros(1)
    ckpt["random_extra"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"2 unrecognised key\(s\)[\s\S]*random_extra"):
        original_sd.split_checkpoint(ckpt)


def test_missing_component_is_named(models):
    unet, _ = models
    ckpt = {f"model.diffusion_model.{to_ldm_unet(k, {1})}": v for k, v in unet.items()}
    with pytest.raises(ValueError, match="no VAE"):
        original_sd.split_checkpoint(ckpt)
