"""The default cascade's base stage, continued on a larger synthetic set encoded once.

tools/train_default_model.sh trains the base stage in two runs: configs/default_base.py on the 1,024
clips the other stages use, then this config from that run's export (``--config.init_from``) on
8,192 clips and 8,192 images whose VAE latents and text embeddings `tools/precompute_latents.py`
wrote once (``--config.data.path``, ``--config.data.image_path``): 2,000 more updates of 8 clips
(+2 images each), with min-SNR-5 loss weighting and a longer EMA than the first run's.
"""

import pathlib
import runpy

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = runpy.run_path(str(pathlib.Path(__file__).with_name("default_base.py")))["get_config"]()
    config.data.precomputed = True
    config.num_steps = 2000
    config.diffusion.min_snr_gamma = 5.0
    config.ema_decay = 0.999
    config.log_every = 100
    config.sample_every = 0
    return config
