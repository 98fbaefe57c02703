"""The default cascade's base stage: 16 frames at 32×32 (8×8×4 latents), joint image-video batches.

The 16 frames are every 4th of a 61-frame synthetic clip, so they are the keyframes the
interpolation stage fills in. See configs/default_common.py and tools/train_default_model.sh."""

import pathlib
import runpy

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    common = runpy.run_path(str(pathlib.Path(__file__).with_name("default_common.py")))
    config = common["make"]("base")
    config.model.block_out_channels = (32, 64)
    config.model.down_block_types = ("CrossAttnDownBlock3D",) * 2
    config.model.up_block_types = ("CrossAttnUpBlock3D",) * 2
    config.data.num_frames = 16
    config.data.frame_stride = 4
    config.data.num_images = 2
    config.num_steps = 2000
    config.sample_every = 500
    config.sample.prompt = "a red circle moving left, slowly"
    config.sample.steps = 25
    config.sample.guidance = 4.0
    return config
