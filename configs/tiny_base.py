"""A tiny base stage that trains on this CPU in minutes (widths 32/64, 4 frames, 16×16 latents).

    python -m lavie_jax.train --config configs/tiny_base.py --workdir runs/tiny_base

Random UNet, VAE and text encoder (configs/tiny_common.py). Expect the loss to start near 1 and
fall below ~0.5 within a few hundred steps; ``samples/`` gets a preview GIF every ``sample_every``
steps.
"""

import pathlib
import runpy

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    common = runpy.run_path(str(pathlib.Path(__file__).with_name("tiny_common.py")))
    config = common["make"]("base")
    config.model.down_block_types = ("CrossAttnDownBlock3D", "DownBlock3D")
    config.model.up_block_types = ("UpBlock3D", "CrossAttnUpBlock3D")
    config.data.num_frames = 4
    config.data.num_images = 2
    config.data.frame_stride = 2
    config.sample_every = 100
    config.sample.prompt = "a red square moving right"
    config.sample.steps = 10
    config.sample.guidance = 3.0
    return config
