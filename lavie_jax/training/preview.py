"""Preview videos during training: a short deterministic DDIM run (η = 0) from the EMA weights.

Written as ``samples/step_<N>.gif`` and ``.png`` (contact sheet) so progress can be watched. The
text-to-video path only (the base stage); the other stages need a low-resolution or keyframe input.
Classifier-free guidance ``ε = ε_u + s·(ε_c − ε_u)``, then `lavie_jax.diffusion.samplers`' DDIM step.
"""

from __future__ import annotations

import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from lavie_jax import media
from lavie_jax.diffusion import samplers


def ddim_sample(
    apply_unet, context: jax.Array, uncond: jax.Array, noise: jax.Array, *, plan, guidance: float
) -> jax.Array:
    """``noise (1, F, h, w, c)`` → clean latents with a DDIM `plan` (`samplers.make_plan`);
    ``context``/``uncond`` ``(1, L, D)``."""
    ctx = jnp.concatenate([uncond, context])  # (2, L, D): [uncond, cond]

    def body(i, state):
        x = state.sample
        out = apply_unet(jnp.concatenate([x, x]), jnp.full((2,), plan.timesteps[i]), ctx)  # (2, F, h, w, c)
        return samplers.step("ddim", plan, state, out[:1] + guidance * (out[1:] - out[:1]))

    state = jax.lax.fori_loop(0, plan.num_steps, body, samplers.init(noise.astype(jnp.float32)))
    return state.sample


def to_uint8(frames: jax.Array) -> np.ndarray:
    """``[-1, 1]`` → uint8 ``[0, 255]`` (the original pipelines' rounding)."""
    return np.asarray(jnp.clip((frames / 2 + 0.5) * 255 + 0.5, 0, 255)).astype(np.uint8)


def write(folder: str | os.PathLike, step: int, frames: np.ndarray, fps: float = 8.0) -> pathlib.Path:
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step_{step:08d}.gif"
    media.write_gif(path, frames, fps)
    media.write_png(path.with_suffix(".png"), media.contact_sheet(frames))
    return path
