"""Temporal interpolation stage (spec §3) at the paper's size: 16 keyframes → 61 frames, 320×512.

    python -m lavie_jax.train --config configs/interpolation.py --workdir runs/interp \\
        --config.init_from=converted/lavie_interpolation --config.data.path=DATA

The UNet sees ``x_t ⊕ copied keyframes`` (8 channels): output frame j is conditioned on ground-truth
frame 4⌊(j+1)/4⌋ of the 61-frame clip (lavie_jax/training/objectives.py). Its first attention is
sparse-causal (frames 0 and i−1), its temporal attention has no position signal and runs after the
feed-forward. ε-prediction on the base stage's linear β schedule. Fields as in configs/base.py;
only those that differ are set here.
"""

import pathlib
import runpy

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = runpy.run_path(str(pathlib.Path(__file__).with_name("base.py")))["get_config"]()
    config.stage = "interpolation"
    config.model.in_channels = 8  # the noisy latents ⊕ the copied keyframe latents
    config.model.temporal = "plain"  # temporal attention without RoPE or relative-position bias
    config.model.temporal_after_ff = True  # block order attn1 → attn2 → ff → temporal
    config.model.sparse_causal = True  # attn1: frame i attends to frames 0 and max(i−1, 0)
    config.data.num_frames = 61  # 4·16 − 3: the keyframes are frames 0, 4, …, 60
    config.data.frame_stride = 1
    config.data.num_images = 0  # joint image batches are a base-stage technique
    config.sample_every = 0  # previews are text-to-video only (base stage)
    return config
