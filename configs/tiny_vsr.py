"""A tiny ×4 VSR stage that trains on this CPU in minutes: 8×8 → 32×32, 4-frame chunks, the
objective of configs/vsr.py (v-prediction, noise-augmented low-res input as the class label).

    python -m lavie_jax.train --config configs/tiny_vsr.py --workdir runs/tiny_vsr

Random UNet, text encoder and a ×4 VAE (the low-res video is concatenated at the latents' size, so
the VAE's factor equals config.vsr.downsample); see configs/tiny_common.py.
"""

import pathlib
import runpy

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    common = runpy.run_path(str(pathlib.Path(__file__).with_name("tiny_common.py")))
    config = common["make"]("vsr")
    config.model.down_block_types = ("DownBlock3D", "CrossAttnDownBlock3D")
    config.model.up_block_types = ("CrossAttnUpBlock3D", "UpBlock3D")
    config.model.only_cross_attention = (True, False)
    config.model.use_linear_projection = True
    config.vae.block_out_channels = (16, 32, 32)  # ×4: 32×32 frames → 8×8 latents
    config.data.num_frames = 4
    config.batch_size = 2
    return config
