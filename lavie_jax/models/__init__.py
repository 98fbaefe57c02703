"""Models: the video UNet, the VAE, the CLIP text encoder and the layers they are built from.

Loading a converted component folder::

    from lavie_jax import models
    unet = models.load_unet("converted/lavie_base/unet")
"""

from lavie_jax.models.clip_text import load_text_encoder
from lavie_jax.models.unet3d import load_unet
from lavie_jax.models.vae import load_vae

__all__ = ["load_text_encoder", "load_unet", "load_vae"]
