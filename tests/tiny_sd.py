"""A tiny random Stable Diffusion pipeline (diffusers + transformers) built inside the tests, with a
small CLIP BPE vocabulary written here, and the same weights as a lavie_jax model folder."""

from __future__ import annotations

import json
import pathlib

import torch
import transformers
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel

from lavie_jax.convert import clip as convert_clip
from lavie_jax.convert import unet as convert_unet
from lavie_jax.convert import vae as convert_vae
from lavie_jax.models import clip_text, tokenizer, unet3d, vae
from lavie_jax.pipelines import model_folder, stage_defaults

UNET = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    block_out_channels=(32, 64),
    layers_per_block=1,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=32,
    attention_head_dim=1,
    norm_num_groups=8,
)
VAE = dict(
    block_out_channels=(16, 32),
    down_block_types=("DownEncoderBlock2D",) * 2,
    up_block_types=("UpDecoderBlock2D",) * 2,
    latent_channels=4,
    layers_per_block=1,
    norm_num_groups=8,
)
SCHEDULER = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    prediction_type="epsilon",
    timestep_spacing="leading",
)
MERGES = ["a t</w>", "c at</w>", "r e", "re d</w>"]


def write_vocab(folder: pathlib.Path) -> pathlib.Path:
    """A small CLIP-style BPE vocabulary: the 256 byte symbols, their ``</w>`` forms, a few merges."""
    symbols = list(tokenizer.bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in MERGES]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(MERGES) + "\n")
    return folder


def perturb(module, scale=0.05, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))
    return module.eval()


def build(root: pathlib.Path) -> StableDiffusionPipeline:
    vocab_dir = write_vocab(root / "vocab")
    tok = transformers.CLIPTokenizer.from_pretrained(vocab_dir, model_max_length=77)
    vocab_size = len(json.loads((vocab_dir / "vocab.json").read_text()))
    text_config = transformers.CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
    )
    return StableDiffusionPipeline(
        vae=perturb(AutoencoderKL(**VAE), seed=1),
        text_encoder=perturb(transformers.CLIPTextModel(text_config), seed=2),
        tokenizer=tok,
        unet=perturb(UNet2DConditionModel(**UNET), seed=3),
        scheduler=DDIMScheduler(**SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def to_model_folder(
    pipe: StableDiffusionPipeline, folder: pathlib.Path, vocab_dir: pathlib.Path
) -> pathlib.Path:
    """Our converters, straight from the in-memory PyTorch modules (temporal layers inflated to zero)."""
    unet = convert_unet.load_unet_from_torch(
        pipe.unet.state_dict(),
        unet3d.UNet3DConfig.from_diffusers_dict(dict(pipe.unet.config)),
        inflate_temporal=True,
    )
    vae_model = convert_vae.load_vae_from_torch(
        pipe.vae.state_dict(), vae.VAEConfig.from_diffusers_dict(dict(pipe.vae.config))
    )
    text = convert_clip.load_text_encoder_from_torch(
        pipe.text_encoder.state_dict(),
        clip_text.CLIPTextConfig.from_hf_dict(pipe.text_encoder.config.to_dict()),
    )
    defaults = stage_defaults.SamplingDefaults(
        schedule=dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"),
        sampler="ddim",
        spacing="leading",
        steps_offset=1,
        set_alpha_to_one=False,
        steps=10,
        guidance=7.5,
        num_frames=2,
        height=16,
        width=16,
    )
    return model_folder.save(
        folder,
        stage="base",
        unet=unet,
        vae=vae_model,
        text_encoder=text,
        tokenizer=tokenizer.Tokenizer.from_folder(vocab_dir),
        scheduler_config=defaults.to_dict(),
    )
