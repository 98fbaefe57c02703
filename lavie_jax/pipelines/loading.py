"""Loading a stage's modules from a model folder (`model_folder`), shared by every stage pipeline.

`load` builds the UNet, VAE, text encoder and tokenizer and reads the sampling defaults; `read_configs`
reads only the configs (no weights), so a cascade can check every stage's arguments before it loads or
compiles anything.
"""

from __future__ import annotations

import os
import pathlib
from typing import NamedTuple

import jax

from lavie_jax.models import attention, clip_text, io, tokenizer, unet3d, vae
from lavie_jax.pipelines import model_folder, stage_defaults


class Components(NamedTuple):
    unet: unet3d.UNet3D
    vae: vae.AutoencoderKL
    text_encoder: clip_text.CLIPTextModel
    tokenizer: tokenizer.Tokenizer
    scheduler_config: dict


class Configs(NamedTuple):
    """What validation needs of a stage: its UNet and VAE configs and its sampling defaults."""

    unet: unet3d.UNet3DConfig
    vae: vae.VAEConfig
    defaults: stage_defaults.SamplingDefaults

    @property
    def spatial_factor(self) -> int:
        """Pixels per latent cell × the UNet's own downsampling: frame sizes must be multiples of it."""
        return self.vae.downsample_factor * self.unet.downsample_factor


def default_attention_impl() -> str:
    """Memory-efficient chunked attention on CPU; XLA's fused attention elsewhere."""
    return "chunked" if jax.default_backend() == "cpu" else "xla"


def load(folder: str | os.PathLike, stage: str, *, attention_impl: str = "auto") -> Components:
    """Check `folder` holds `stage` and build its modules (attention set to `attention_impl`)."""
    folder = pathlib.Path(folder)
    model_folder.check_folder(folder, stage=stage)
    unet = unet3d.load_unet(folder / "unet")
    vae_model = vae.load_vae(folder / "vae")
    text_encoder = clip_text.load_text_encoder(folder / "text_encoder")
    impl = default_attention_impl() if attention_impl == "auto" else attention_impl
    attention.set_impl(unet, impl)
    attention.set_impl(vae_model, impl)
    tok = tokenizer.Tokenizer.from_folder(folder / "tokenizer")
    return Components(unet, vae_model, text_encoder, tok, model_folder.read_scheduler_config(folder))


def read_configs(folder: str | os.PathLike, stage: str) -> Configs:
    """Check `folder` holds `stage` and read its configs, without touching the weights."""
    folder = pathlib.Path(folder)
    model_folder.check_folder(folder, stage=stage)
    return Configs(
        unet3d.UNet3DConfig.from_dict(io.read_config(folder / "unet", kind="unet")),
        vae.VAEConfig.from_dict(io.read_config(folder / "vae", kind="vae")),
        stage_defaults.SamplingDefaults.from_dict(model_folder.read_scheduler_config(folder)),
    )
