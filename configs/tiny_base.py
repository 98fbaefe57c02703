"""A tiny base stage that trains on this CPU in minutes (widths 32/64, 4 frames, 16×16 latents).

    python -m lavie_jax.train --config configs/tiny_base.py --workdir runs/tiny_base

Random UNet, VAE and text encoder (nothing to download); synthetic captioned clips of coloured
shapes, written into the workdir on the first run (or pass ``--config.data.path``). Expect the loss
to start near 1 and fall below ~0.5 within a few hundred steps; ``samples/`` gets a preview GIF
every ``sample_every`` steps. Same fields as configs/base.py (documented there); only sizes differ.
"""

import pathlib
import runpy

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = runpy.run_path(str(pathlib.Path(__file__).with_name("base.py")))["get_config"]()
    config.compute_dtype = "float32"
    config.model.block_out_channels = (32, 64)
    config.model.down_block_types = ("CrossAttnDownBlock3D", "DownBlock3D")
    config.model.up_block_types = ("UpBlock3D", "CrossAttnUpBlock3D")
    config.model.layers_per_block = 1
    config.model.num_attention_heads = 1  # head dim 32 / 64: the temporal RoPE rotates 32 channels
    config.model.norm_num_groups = 8
    config.vae = ml_collections.ConfigDict(
        {"block_out_channels": (32, 32), "layers_per_block": 1, "norm_num_groups": 8}  # ×2, 16×16 latents
    )
    config.text_encoder = ml_collections.ConfigDict(
        {
            "vocab_size": 49408,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
        }
    )
    config.model.cross_attention_dim = 32

    config.data.source = "synthetic"
    config.data.num_frames = 4
    config.data.num_images = 2
    config.data.height = 32  # the tiny VAE downsamples ×2: 16×16 latents
    config.data.width = 32
    config.data.frame_stride = 2
    config.data.synthetic.videos = 64
    config.data.synthetic.images = 64
    config.data.synthetic.frames = 8

    config.batch_size = 4
    config.num_steps = 300
    config.optim.learning_rate = 1e-3
    config.optim.warmup_steps = 10
    config.ema_decay = 0.99
    config.log_every = 10
    config.checkpoint_every = 100
    config.sample_every = 100
    config.sample.prompt = "a red square moving right"
    config.sample.steps = 10
    config.sample.guidance = 3.0
    return config
