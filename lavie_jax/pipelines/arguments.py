"""Argument checks shared by the stage pipelines; every error names the argument, its value and what
was expected, and is raised before anything is compiled."""

from __future__ import annotations

import numpy as np

from lavie_jax.diffusion import samplers


def positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}={value!r}: expected a positive integer")
    return int(value)


def sampling(steps, guidance, sampler) -> tuple[int, float, str]:
    """Check the arguments every stage shares: steps, guidance scale and sampler name."""
    steps = positive_int("steps", steps)
    if guidance < 0:
        raise ValueError(f"guidance={guidance}: expected ≥ 0")
    if sampler not in samplers.NAMES:
        raise ValueError(f"sampler={sampler!r}: expected one of {samplers.NAMES}")
    return steps, float(guidance), sampler


def frame_size(
    height: int, width: int, vae_factor: int, unet_factor: int, what: str = "height×width"
) -> None:
    """Frame sizes must be multiples of the stage's spatial factor: the VAE's × the UNet's downsampling."""
    factor = vae_factor * unet_factor
    if height % factor or width % factor:
        raise ValueError(
            f"{what}={height}×{width}: both must be multiples of {factor} for this model "
            f"(VAE ×{vae_factor}, UNet ×{unet_factor})"
        )
