"""The default cascade's autoencoder: an AutoencoderKL with ×4 downsampling and 4 latent channels,
trained (L1 + a small KL) on the frames and images of the synthetic set; 128×128 frames in a second
run (``--config.init_from`` the first's export, ``--config.data.height/width=128``) so it also serves
the VSR stage's 4× larger frames. See tools/train_default_model.sh."""

import pathlib
import runpy

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    common = runpy.run_path(str(pathlib.Path(__file__).with_name("default_common.py")))
    config = common["make"]("base")
    config.stage = "vae"
    config.data.num_frames = 2  # frames of a clip, used as independent images
    config.data.frame_stride = 30
    config.data.num_images = 2
    config.optim.learning_rate = 1e-3
    config.ema_decay = 0.99
    config.num_steps = 1000
    config.sample_every = 0
    return config
