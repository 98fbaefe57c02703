"""Whole conversions into lavie_jax model folders (the work behind ``tools/convert_sd.py``).

Memory: tensors go straight from the source state dict to flat numpy arrays (source entries are
dropped as they are converted) and are checked against the target model's *abstract* shapes, so no
module is ever materialised — except the fresh temporal layers of an inflation.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
from flax import nnx

from lavie_jax.convert import clip as convert_clip
from lavie_jax.convert import original_sd, sources, state
from lavie_jax.convert import unet as convert_unet
from lavie_jax.convert import vae as convert_vae
from lavie_jax.models import clip_text, tokenizer, unet3d, vae
from lavie_jax.pipelines import model_folder, stage_defaults

# SD 1.x's component configs (diffusers names), for single-file checkpoints that carry none.
SD1_UNET = dict(
    in_channels=4,
    out_channels=4,
    block_out_channels=[320, 640, 1280, 1280],
    layers_per_block=2,
    down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    attention_head_dim=8,
    cross_attention_dim=768,
    norm_num_groups=32,
    norm_eps=1e-5,
)
SD1_VAE = dict(
    block_out_channels=[128, 256, 512, 512],
    layers_per_block=2,
    latent_channels=4,
    norm_num_groups=32,
    scaling_factor=0.18215,
)
SD1_TEXT = dict(
    vocab_size=49408,
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    hidden_act="quick_gelu",
    eos_token_id=2,
)


def _abstract_shapes(build) -> dict[str, tuple[int, ...]]:
    module = nnx.eval_shape(build)
    return {k: tuple(v.shape) for k, v in state.flat_params(module).items()}


def _unet_flat(unet_sd, config: unet3d.UNet3DConfig, *, inflate: bool, seed: int = 0) -> dict:
    flat = convert_unet.unet_flat_from_torch(unet_sd)
    if inflate:  # only the temporal layers are initialised; every 2-D weight comes from the source
        fresh = unet3d.UNet3D(config, rngs=nnx.Rngs(seed))
        flat = convert_unet.inflate(flat, fresh)
        del fresh
    state.check_complete(_abstract_shapes(lambda: unet3d.UNet3D(config, rngs=nnx.Rngs(0))), flat, "UNet")
    return flat


def _vae_flat(vae_sd, config: vae.VAEConfig) -> dict:
    flat = convert_vae.vae_flat_from_torch(vae_sd)
    state.check_complete(_abstract_shapes(lambda: vae.AutoencoderKL(config, rngs=nnx.Rngs(0))), flat, "VAE")
    return flat


def _text_flat(text_sd, config: clip_text.CLIPTextConfig) -> dict:
    flat = convert_clip.clip_text_flat_from_torch(text_sd)
    state.check_complete(
        _abstract_shapes(lambda: clip_text.CLIPTextModel(config, rngs=nnx.Rngs(0))), flat, "text encoder"
    )
    return flat


def convert_sd(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    inflate: bool = True,
    dtype: str = "float32",
    unet_config: dict | None = None,
    vae_config: dict | None = None,
    text_config: dict | None = None,
) -> pathlib.Path:
    """Stable Diffusion 1.x (a diffusers folder or one original-layout file) → a base-stage folder.

    ``inflate=True`` gives LaVie's base UNet with zero-initialised temporal output projections (equal
    to SD on every frame); ``inflate=False`` a purely 2-D UNet (``temporal=None``).
    """
    src = pathlib.Path(src)
    if not src.exists():
        raise ValueError(f"source {str(src)!r} does not exist")
    if src.is_dir():
        unet_cfg, unet_sd = sources.diffusers_component(src, "unet")
        vae_cfg, vae_sd = sources.diffusers_component(src, "vae")
        text_cfg, text_sd = sources.diffusers_component(src, "text_encoder")
        tok = tokenizer.Tokenizer.from_folder(src / "tokenizer")
    else:
        unet_sd, vae_sd, text_sd = original_sd.split_checkpoint(sources.load_state_dict(src))
        unet_cfg, vae_cfg, text_cfg = SD1_UNET, SD1_VAE, SD1_TEXT
        tok = tokenizer.default_tokenizer()  # SD 1.x's tokenizer is OpenAI CLIP's
    ucfg = unet3d.UNet3DConfig.from_diffusers_dict(
        unet_config or unet_cfg, temporal="rope_relpos" if inflate else None
    )
    vcfg = vae.VAEConfig.from_diffusers_dict(vae_config or vae_cfg)
    tcfg = clip_text.CLIPTextConfig.from_hf_dict(text_config or text_cfg)
    components = {
        "unet": (_unet_flat(unet_sd, ucfg, inflate=inflate), ucfg.to_dict()),
        "vae": (_vae_flat(vae_sd, vcfg), vcfg.to_dict()),
        "text_encoder": (_text_flat(text_sd, tcfg), tcfg.to_dict()),
    }
    return model_folder.write(
        out,
        stage="base",
        components=components,
        tokenizer=tok,
        scheduler_config=stage_defaults.base_stage().to_dict(),
        dtype=dtype,
        source=str(src),
    )


def detect_stage(state_dict: dict) -> str:
    """Which released LaVie UNet a state dict looks like (conv_in's input channels and temporal names)."""
    in_channels = np.shape(state_dict.get("conv_in.weight", np.zeros((0, 0))))[1]
    keys = " ".join(state_dict)
    if "attn_temporal" in keys or "temporal_rotary_emb" in keys or in_channels == 7:
        return "vsr"
    if in_channels == 8 or ("attn_temp" in keys and "time_rel_pos_bias" not in keys):
        return "interpolation"
    if "time_rel_pos_bias" in keys and in_channels == 4:
        return "base"
    return "unknown"


def convert_lavie(
    stage: str,
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    *,
    sd_folder: str | os.PathLike,
    unet_config: dict | None = None,
    dtype: str = "float32",
) -> pathlib.Path:
    """A released LaVie checkpoint (``.pt`` with or without ``"ema"``, or ``.safetensors``) plus an
    already converted SD folder (its VAE, text encoder and tokenizer) → a model folder of `stage`."""
    if stage != "base":
        raise ValueError(
            f"--stage {stage}: converting the {stage} UNet needs the {stage} model, which this version "
            "does not have yet (only 'base' is supported)"
        )
    sd_folder = pathlib.Path(sd_folder)
    model_folder.check_folder(sd_folder)
    state_dict = sources.load_state_dict(checkpoint)
    looks_like = detect_stage(state_dict)
    if looks_like != stage:
        raise ValueError(
            f"{checkpoint}: passed as --stage {stage}, but it looks like a '{looks_like}' checkpoint "
            "(judged by conv_in's input channels and the temporal layers' names)"
        )
    config = unet3d.UNet3DConfig.from_diffusers_dict(unet_config) if unet_config else unet3d.lavie_base()
    import safetensors.numpy

    def component(name: str) -> tuple[dict, dict]:
        from lavie_jax.models import io

        cfg = io.read_config(sd_folder / name, kind=name)
        return dict(safetensors.numpy.load_file(str(sd_folder / name / io.WEIGHTS_NAME))), cfg

    components = {
        "unet": (_unet_flat(state_dict, config, inflate=False), config.to_dict()),
        "vae": component("vae"),
        "text_encoder": component("text_encoder"),
    }
    return model_folder.write(
        out,
        stage=stage,
        components=components,
        tokenizer=tokenizer.Tokenizer.from_folder(sd_folder / "tokenizer"),
        scheduler_config=stage_defaults.base_stage().to_dict(),
        dtype=dtype,
        source=str(checkpoint),
    )
