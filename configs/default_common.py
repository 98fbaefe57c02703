"""Settings shared by the shipped default cascade (configs/default_*.py; tools/train_default_model.sh).

Everything is sized to train on a 2-core CPU in well under an hour per stage and to ship in a few MB:
a ×4 AutoencoderKL, a random frozen 2-layer CLIP text encoder (width 32) behind the real CLIP BPE
tokenizer, and UNets of widths 32/64. Data: the synthetic captioned set (lavie_jax/data/synthetic.py),
61-frame clips at 32×32 for the base and interpolation stages, and at 128×128 for VSR.
"""

import pathlib
import runpy

import ml_collections

BASE_SIZE = 32  # base and interpolation frames are 32×32; VSR makes 128×128
TEXT_ENCODER = {  # random and frozen: every stage builds the same one from config.seed
    "vocab_size": 49408,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "max_position_embeddings": 77,
}
VAE = {"block_out_channels": (16, 32, 32), "layers_per_block": 1, "norm_num_groups": 8}  # ×4


def make(stage_config: str) -> ml_collections.ConfigDict:
    """configs/<stage_config>.py with the default model's shared settings applied."""
    config = runpy.run_path(str(pathlib.Path(__file__).with_name(f"{stage_config}.py")))["get_config"]()
    config.seed = 0
    config.compute_dtype = "float32"
    config.text_encoder = ml_collections.ConfigDict(TEXT_ENCODER)
    config.vae = ml_collections.ConfigDict(VAE)
    config.model.cross_attention_dim = TEXT_ENCODER["hidden_size"]
    config.model.layers_per_block = 1
    config.model.norm_num_groups = 8
    config.model.num_attention_heads = 1  # head widths 32/64: the temporal RoPE rotates 32 channels

    config.data.source = "synthetic"
    config.data.height = config.data.width = BASE_SIZE
    config.data.synthetic.videos = 1024
    config.data.synthetic.images = 1024
    config.data.synthetic.frames = 61

    config.batch_size = 8
    config.optim.learning_rate = 5e-4
    config.optim.warmup_steps = 100
    config.optim.weight_decay = 0.0
    config.ema_decay = 0.995  # short runs: an EMA over the last ~200 updates
    config.log_every = 50
    config.checkpoint_every = 500
    config.keep_checkpoints = 2
    return config
