"""×4 video super-resolution stage (spec §4) at the paper's layout: the SD ×4 upscaler's UNet with
temporal resnets, RoPE + relative-bias temporal attention and TemporalModule3Ds.

    python tools/convert_sd.py upscaler ~/models/stable-diffusion-x4-upscaler --out converted/x4
    python -m lavie_jax.train --config configs/vsr.py --workdir runs/vsr \\
        --config.init_from=converted/x4 --config.data.path=DATA

Each example is a high-resolution clip; the trainer makes the low-resolution input by ×4 area
downsampling and noise-augments it on the scaled-linear low-res schedule at a random level in
0…max_noise_level, the level doubling as the UNet's class label. v-prediction on the linear β
schedule. Fields as in configs/base.py plus the ``vsr`` group; only those that differ are set here.
"""

import pathlib
import runpy

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = runpy.run_path(str(pathlib.Path(__file__).with_name("base.py")))["get_config"]()
    config.stage = "vsr"
    m = config.model  # lavie_jax.models.unet3d.lavie_vsr()
    m.in_channels = 7  # the noisy latents ⊕ the low-res RGB video at the latents' size
    m.low_res_channels = 3
    m.block_out_channels = (256, 512, 512, 1024)
    m.down_block_types = ("DownBlock3D",) + ("CrossAttnDownBlock3D",) * 3
    m.up_block_types = ("CrossAttnUpBlock3D",) * 3 + ("UpBlock3D",)
    m.num_attention_heads = 8
    m.cross_attention_dim = 1024  # OpenCLIP ViT-H text width
    m.use_linear_projection = True
    del m["only_cross_attention"]  # base.py's single bool becomes one value per level
    m.only_cross_attention = (True, True, True, False)  # attn1 attends to the text at these levels
    m.num_class_embeds = 1000  # the noise level of the low-res input is a class label
    m.max_noise_level = 350  # higher levels are refused
    m.temporal = "conv_rope_relpos"  # temporal resnet before each transformer + RoPE/rel-bias attention
    m.temporal_modules = True  # a TemporalModule3D after every down, mid and up block

    config.data.num_frames = 8  # the released sampler works in chunks of 8 frames
    config.data.frame_stride = 1
    config.data.num_images = 0
    config.data.height = 320  # high-resolution crops; the low-res input is 80×128
    config.data.width = 512
    config.diffusion.prediction_type = "v_prediction"
    config.sample_every = 0  # previews are text-to-video only (base stage)

    config.vsr = ml_collections.ConfigDict()
    config.vsr.downsample = 4  # high-res → low-res factor (area downsampling)
    config.vsr.max_noise_level = 350  # training levels are uniform in 0…max_noise_level
    config.vsr.low_res_beta_schedule = "scaled_linear"  # the low-res noise-augmentation schedule
    config.vsr.low_res_beta_start = 1e-4
    config.vsr.low_res_beta_end = 0.02
    return config
