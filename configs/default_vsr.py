"""The default cascade's ×4 VSR stage: 32×32 → 128×128, trained on 8-frame chunks of 128×128 clips
(see configs/vsr.py for the objective, configs/default_common.py for the shared sizes)."""

import pathlib
import runpy

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    common = runpy.run_path(str(pathlib.Path(__file__).with_name("default_common.py")))
    config = common["make"]("vsr")
    config.model.block_out_channels = (32, 64)
    config.model.down_block_types = ("DownBlock3D", "CrossAttnDownBlock3D")
    config.model.up_block_types = ("CrossAttnUpBlock3D", "UpBlock3D")
    config.model.only_cross_attention = (True, False)
    config.data.height = config.data.width = 128
    config.data.num_frames = 8
    config.batch_size = 2
    config.num_steps = 800
    return config
