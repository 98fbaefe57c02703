"""Tiny random model folders of the three LaVie stages, built in JAX alone (no PyTorch): a CLIP text
encoder with the small BPE vocabulary of `tiny_sd`, 2-level UNets of each stage's variant, a ×2 VAE
(base, interpolation) and a ×4 VAE (VSR). Frames of 16×16 px go through the whole cascade in seconds."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import tiny_sd
from flax import nnx

from lavie_jax.convert import state
from lavie_jax.models import clip_text, tokenizer, unet3d, vae
from lavie_jax.pipelines import model_folder, stage_defaults

WIDTH = 32  # text encoder width = the UNets' cross-attention width
UNET = dict(
    block_out_channels=(32, 64),
    layers_per_block=1,
    down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
    up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
    num_attention_heads=1,
    cross_attention_dim=WIDTH,
    norm_num_groups=8,
)
UNETS = {
    "base": dict(UNET),
    "interpolation": dict(UNET, in_channels=8, temporal="plain", temporal_after_ff=True, sparse_causal=True),
    "vsr": dict(
        UNET,
        in_channels=7,
        low_res_channels=3,
        use_linear_projection=True,
        num_class_embeds=1000,
        max_noise_level=350,
        temporal="conv_rope_relpos",
        temporal_modules=True,
    ),
}
VAES = {  # ×2 for base and interpolation, ×4 for VSR (the SD ×4 upscaler's VAE is ×4)
    "base": dict(block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8),
    "interpolation": dict(block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8),
    "vsr": dict(
        block_out_channels=(16, 32, 32), layers_per_block=1, norm_num_groups=8, scaling_factor=0.08333
    ),
}
DEFAULTS = {
    "base": stage_defaults.base_stage,
    "interpolation": stage_defaults.interpolation_stage,
    "vsr": stage_defaults.vsr_stage,
}


def random_params(build_module, rng: np.random.Generator) -> tuple[dict, dict]:
    """(flat params, config dict) of a module built abstractly (no initialisation cost): kernels
    N(0, 1/fan_in), scales 1 + N(0, 0.05²), biases and embeddings N(0, 0.05²)."""
    module = nnx.eval_shape(build_module)
    flat = {}
    for name, value in state.flat_params(module).items():
        shape = value.shape
        if name.endswith("kernel"):
            flat[name] = rng.standard_normal(shape) / np.sqrt(np.prod(shape[:-1]))
        elif name.endswith("scale"):
            flat[name] = 1 + 0.05 * rng.standard_normal(shape)
        else:
            flat[name] = 0.05 * rng.standard_normal(shape)
    return {k: v.astype(np.float32) for k, v in flat.items()}, module.config.to_dict()


def build(root: pathlib.Path, stage: str, *, seed: int = 0, **defaults) -> pathlib.Path:
    """Write ``root/<stage>``: random weights, the stage's released sampling conventions (steps 2 and
    16×16 frames unless overridden by `defaults`)."""
    vocab = tiny_sd.write_vocab(root / "vocab")
    vocab_size = len(json.loads((vocab / "vocab.json").read_text()))
    rng = np.random.default_rng(seed)
    text_config = clip_text.CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=WIDTH,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        eos_token_id=vocab_size - 1,
    )
    size = dict(height=64, width=64) if stage == "vsr" else dict(height=16, width=16)
    sampling = DEFAULTS[stage]().to_dict() | dict(steps=2, **size) | defaults
    components = {
        "unet": random_params(
            lambda: unet3d.UNet3D(unet3d.UNet3DConfig(**UNETS[stage]), rngs=nnx.Rngs(0)), rng
        ),
        "vae": random_params(lambda: vae.AutoencoderKL(vae.VAEConfig(**VAES[stage]), rngs=nnx.Rngs(0)), rng),
        "text_encoder": random_params(lambda: clip_text.CLIPTextModel(text_config, rngs=nnx.Rngs(0)), rng),
    }
    return model_folder.write(
        root / stage,
        stage=stage,
        components=components,
        tokenizer=tokenizer.Tokenizer.from_folder(vocab),
        scheduler_config=sampling,
    )
