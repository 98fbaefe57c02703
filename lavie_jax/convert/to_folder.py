"""Whole conversions into lavie_jax model folders (the work behind ``tools/convert_sd.py``).

* `convert_sd`: Stable Diffusion 1.x → a base-stage folder (UNet inflated to LaVie's base UNet).
* `convert_upscaler`: the SD ×4 upscaler (diffusers folder) → a VSR-stage folder: its UNet inflated
  to LaVie's VSR UNet, its ×4 VAE and OpenCLIP-H text encoder (in CLIP-text form), its tokenizer.
* `convert_lavie`: a released LaVie checkpoint (base, interpolation or VSR) + the VAE, text encoder
  and tokenizer of a folder converted above (SD 1.x for base/interpolation, the upscaler for VSR).

Memory: sources are memory-mapped (`sources.load_state_dict`: safetensors files and zip pickles), their
tensors become flat numpy *views* (transposes included; half-precision ones keep their dtype), checked
against the target model's *abstract* shapes — no module is ever materialised; an inflation initialises
its fresh temporal layers alone (`convert.unet.fresh_temporal`) — and `streaming.write_folder` casts,
lays out and writes them one at a time. A full-size conversion holds about one model's worth of memory,
nearly all of it the source's page-cache pages (tests/test_convert_full_size.py).
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
from flax import nnx

from lavie_jax.convert import clip as convert_clip
from lavie_jax.convert import original_sd, sources, state, streaming
from lavie_jax.convert import unet as convert_unet
from lavie_jax.convert import vae as convert_vae
from lavie_jax.models import clip_text, io, tokenizer, unet3d, vae
from lavie_jax.pipelines import model_folder, stage_defaults

STAGES = ("base", "interpolation", "vsr")
# What turns a (2-D or original LaVie) UNet config into each stage's 3-D UNet (spec §2.1, §3.1, §4.1).
STAGE_UNET_OPTIONS = {
    "base": dict(temporal="rope_relpos"),
    "interpolation": dict(temporal="plain", temporal_after_ff=True, sparse_causal=True),
    "vsr": dict(low_res_channels=3, temporal="conv_rope_relpos", temporal_modules=True),
}
STAGE_PRESETS = {
    "base": unet3d.lavie_base,
    "interpolation": unet3d.lavie_interpolation,
    "vsr": unet3d.lavie_vsr,
}
UPSCALER_MAX_NOISE_LEVEL = 350  # the diffusers upscale pipeline's default and LaVie's (spec §4.1)
UPSCALER_VAE_SCALING = 0.08333  # LaVie's vsr/configs/vae_config.json (spec §4.3)

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


def scheduler_config(stage: str) -> dict:
    """The stage's sampling conventions (``scheduler/config.json``) from `stage_defaults`."""
    make = {
        "base": stage_defaults.base_stage,
        "interpolation": stage_defaults.interpolation_stage,
        "vsr": stage_defaults.vsr_stage,
    }[stage]
    return make().to_dict()


_SHAPES: dict[str, dict[str, tuple[int, ...]]] = {}


def _abstract_shapes(module_class, config) -> dict[str, tuple[int, ...]]:
    """The parameter shapes of ``module_class(config)``, traced without allocating (``nnx.eval_shape``).

    Cached per config: tracing a 4-level UNet takes seconds (flax's ``sharding`` lookups on tracers cost
    more as the trace grows), and one process (the tests) converts the same configs many times."""
    key = f"{module_class.__qualname__}:{config!r}"
    if key not in _SHAPES:
        module = nnx.eval_shape(lambda: module_class(config, rngs=nnx.Rngs(0)))
        _SHAPES[key] = {k: tuple(v.shape) for k, v in state.flat_params(module).items()}
    return _SHAPES[key]


def _unet_flat(unet_sd, config: unet3d.UNet3DConfig, *, inflate: bool, seed: int = 0) -> dict:
    flat = convert_unet.unet_flat_from_torch(unet_sd)
    if inflate:  # only the temporal layers are initialised; every 2-D weight comes from the source
        flat = convert_unet.inflate(flat, convert_unet.fresh_temporal(config, seed))
    state.check_complete(_abstract_shapes(unet3d.UNet3D, config), flat, "UNet")
    return flat


def _vae_flat(vae_sd, config: vae.VAEConfig) -> dict:
    flat = convert_vae.vae_flat_from_torch(vae_sd)
    state.check_complete(_abstract_shapes(vae.AutoencoderKL, config), flat, "VAE")
    return flat


def _text_flat(text_sd, config: clip_text.CLIPTextConfig) -> dict:
    flat = convert_clip.clip_text_flat_from_torch(text_sd)
    state.check_complete(_abstract_shapes(clip_text.CLIPTextModel, config), flat, "text encoder")
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
    return streaming.write_folder(
        out,
        stage="base",
        components=components,
        tokenizer=tok,
        scheduler_config=scheduler_config("base"),
        dtype=dtype,
        source=str(src),
    )


def convert_upscaler(
    src: str | os.PathLike, out: str | os.PathLike, *, inflate: bool = True, dtype: str = "float32"
) -> pathlib.Path:
    """The SD ×4 upscaler (a diffusers folder) → a VSR-stage folder.

    ``inflate=True`` gives LaVie's VSR UNet whose temporal layers are freshly initialised with zero
    output projections, so it equals the 2-D upscaler on every frame (the starting point for VSR
    training); ``inflate=False`` the 2-D upscaler per frame (``temporal=None``). Either takes the
    noise-augmented low-res video as ``low_res`` and the noise level as ``class_labels``.
    """
    src = pathlib.Path(src)
    if not src.is_dir():
        raise ValueError(f"upscaler source {str(src)!r} is not a diffusers folder")
    unet_cfg, unet_sd = sources.diffusers_component(src, "unet")
    if unet_cfg.get("in_channels") != 7 or not unet_cfg.get("num_class_embeds"):
        raise ValueError(
            f"{src}/unet: in_channels={unet_cfg.get('in_channels')!r}, "
            f"num_class_embeds={unet_cfg.get('num_class_embeds')!r}; expected the ×4 upscaler's 7 input "
            "channels (4 latent + 3 low-res RGB) and a noise-level embedding"
        )
    vae_cfg, vae_sd = sources.diffusers_component(src, "vae")
    text_cfg, text_sd = sources.diffusers_component(src, "text_encoder")
    index = sources.read_json(src / "model_index.json") if (src / "model_index.json").is_file() else {}
    temporal = STAGE_UNET_OPTIONS["vsr"] if inflate else dict(low_res_channels=3, temporal=None)
    ucfg = unet3d.UNet3DConfig.from_diffusers_dict(
        unet_cfg, max_noise_level=index.get("max_noise_level", UPSCALER_MAX_NOISE_LEVEL), **temporal
    )
    # An absent or SD 1.x scale is replaced by the ×4 VAE's, as diffusers' upscale pipeline does.
    if vae_cfg.get("scaling_factor", 0.18215) == 0.18215:
        vae_cfg = {**vae_cfg, "scaling_factor": UPSCALER_VAE_SCALING}
    vcfg = vae.VAEConfig.from_diffusers_dict(vae_cfg)
    tcfg = clip_text.CLIPTextConfig.from_hf_dict(text_cfg)
    components = {
        "unet": (_unet_flat(unet_sd, ucfg, inflate=inflate), ucfg.to_dict()),
        "vae": (_vae_flat(vae_sd, vcfg), vcfg.to_dict()),
        "text_encoder": (_text_flat(text_sd, tcfg), tcfg.to_dict()),
    }
    return streaming.write_folder(
        out,
        stage="vsr",
        components=components,
        tokenizer=tokenizer.Tokenizer.from_folder(src / "tokenizer"),
        scheduler_config=scheduler_config("vsr"),
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


def lavie_unet_config(stage: str, unet_config: dict | None = None) -> unet3d.UNet3DConfig:
    """The released stage's UNet config, or one read from the original constructor arguments."""
    if unet_config is None:
        return STAGE_PRESETS[stage]()
    if stage == "vsr":  # LaVie's vsr/configs/unet_3d_config.json options this port implements
        levels = list(range(len(unet_config.get("block_out_channels", ()))))
        for field, expected in (
            ("down_temporal_idx", levels),
            ("up_temporal_idx", levels),
            ("mid_temporal", True),
            ("video_condition", False),
        ):
            if field in unet_config and unet_config[field] != expected:
                raise ValueError(
                    f"VSR UNet config: {field}={unet_config[field]!r} is not supported; expected {expected!r}"
                )
        blocks = unet_config.get("temporal_module_config", {}).get("attention_block_types", ["", ""])
        if list(blocks) != ["", ""]:
            raise ValueError(
                f"VSR UNet config: temporal_module_config.attention_block_types={blocks!r} is not "
                "supported; expected ['', ''] (no attention inside the temporal modules)"
            )
        unet_config = {k: v for k, v in unet_config.items() if k != "temporal_module_config"}
        unet_config = {"max_noise_level": UPSCALER_MAX_NOISE_LEVEL, **unet_config}  # the constructor default
    return unet3d.UNet3DConfig.from_diffusers_dict(unet_config, **STAGE_UNET_OPTIONS[stage])


def _folder_component(folder: pathlib.Path, name: str) -> tuple[dict, dict]:
    """``(flat params, config)`` of an already converted component folder."""
    config = io.read_config(folder / name, kind=name)
    return sources.load_safetensors(folder / name / io.WEIGHTS_NAME), config


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
    already converted folder holding the stage's VAE, text encoder and tokenizer → a model folder of
    `stage`. That folder is an SD 1.x conversion for base and interpolation, an upscaler conversion
    (``convert_upscaler``) for VSR."""
    if stage not in STAGES:
        raise ValueError(f"stage={stage!r}; expected one of {STAGES}")
    sd_folder = pathlib.Path(sd_folder)
    index = model_folder.check_folder(sd_folder)
    wanted = ("vsr",) if stage == "vsr" else ("base", "interpolation")
    if index.get("stage") not in wanted:
        source = (
            "the upscaler ('upscaler' command)" if stage == "vsr" else "Stable Diffusion 1.x ('sd' command)"
        )
        raise ValueError(
            f"--sd {sd_folder}: holds a {index.get('stage')!r} folder; the {stage} stage takes its VAE and "
            f"text encoder from a conversion of {source}"
        )
    state_dict = sources.load_state_dict(checkpoint)
    looks_like = detect_stage(state_dict)
    if looks_like != stage:
        raise ValueError(
            f"{checkpoint}: passed as --stage {stage}, but it looks like a '{looks_like}' checkpoint "
            "(judged by conv_in's input channels and the temporal layers' names)"
        )
    config = lavie_unet_config(stage, unet_config)
    text = _folder_component(sd_folder, "text_encoder")
    if text[1].get("hidden_size") != config.cross_attention_dim:
        raise ValueError(
            f"--sd {sd_folder}: its text encoder's width {text[1].get('hidden_size')} differs from the "
            f"UNet's cross_attention_dim {config.cross_attention_dim}"
        )
    components = {
        "unet": (_unet_flat(state_dict, config, inflate=False), config.to_dict()),
        "vae": _folder_component(sd_folder, "vae"),
        "text_encoder": text,
    }
    return streaming.write_folder(
        out,
        stage=stage,
        components=components,
        tokenizer=tokenizer.Tokenizer.from_folder(sd_folder / "tokenizer"),
        scheduler_config=scheduler_config(stage),
        dtype=dtype,
        source=str(checkpoint),
    )
