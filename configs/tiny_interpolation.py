"""A tiny interpolation stage that trains on this CPU in minutes: 3 keyframes → 9 frames at 32×32
(16×16 latents), the objective of configs/interpolation.py.

    python -m lavie_jax.train --config configs/tiny_interpolation.py --workdir runs/tiny_interp

Random UNet, VAE and text encoder (configs/tiny_common.py); the loss falls within a few hundred steps.
"""

import pathlib
import runpy

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    common = runpy.run_path(str(pathlib.Path(__file__).with_name("tiny_common.py")))
    config = common["make"]("interpolation")
    config.model.down_block_types = ("CrossAttnDownBlock3D", "DownBlock3D")
    config.model.up_block_types = ("UpBlock3D", "CrossAttnUpBlock3D")
    config.data.num_frames = 9  # 4·3 − 3: keyframes 0, 4, 8
    config.data.synthetic.frames = 9
    config.batch_size = 2
    return config
