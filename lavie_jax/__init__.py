"""LaVie cascaded text-to-video latent diffusion in JAX / Flax NNX."""

__version__ = "0.1.0"
