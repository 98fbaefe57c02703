"""Settings shared by the tiny configs (configs/tiny_{base,interpolation,vsr}.py): sizes that train
on this CPU in minutes, with a random UNet, VAE and text encoder (nothing to download) and synthetic
captioned clips written into the workdir on the first run (or pass ``--config.data.path``).

Same fields as configs/base.py (documented there); only sizes differ from the paper-size stage config.
"""

import pathlib
import runpy

import ml_collections

TEXT_ENCODER = {  # a random 2-layer CLIP text encoder of width 32 behind the real CLIP tokenizer
    "vocab_size": 49408,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "max_position_embeddings": 77,
}


def make(stage_config: str) -> ml_collections.ConfigDict:
    """configs/<stage_config>.py shrunk to a UNet of widths 32/64 on 32×32 synthetic frames."""
    config = runpy.run_path(str(pathlib.Path(__file__).with_name(f"{stage_config}.py")))["get_config"]()
    config.compute_dtype = "float32"
    config.model.block_out_channels = (32, 64)
    config.model.layers_per_block = 1
    config.model.num_attention_heads = 1  # head dim 32 / 64: the temporal RoPE rotates 32 channels
    config.model.norm_num_groups = 8
    config.model.cross_attention_dim = TEXT_ENCODER["hidden_size"]
    config.vae = ml_collections.ConfigDict(
        {"block_out_channels": (32, 32), "layers_per_block": 1, "norm_num_groups": 8}  # ×2
    )
    config.text_encoder = ml_collections.ConfigDict(TEXT_ENCODER)

    config.data.source = "synthetic"
    config.data.height = 32
    config.data.width = 32
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
    return config
