"""The denoising loop every stage shares, for use inside a jitted program.

    context = text_context(text_encoder, prompt_ids, negative_ids, uncond_first)   # (2B, L, D)
    latents = sample(model, "ddim", plan, noise, key, context, scale, uncond_first)

One ``lax.fori_loop`` over the plan's steps; each step calls the model ONCE on the doubled batch
(unconditional and conditional halves, in the stage's order) and combines the halves with
classifier-free guidance before the sampler step. A stage adds its own conditioning inside `model`
(the interpolation stage's copied frames, the VSR stage's low-res video and noise level).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from lavie_jax.diffusion import plan as plan_lib
from lavie_jax.diffusion import samplers
from lavie_jax.pipelines import guidance, progress

# model(x (2B, F, h, w, C), t (2B,), context (2B, L, D)) -> (2B, F, h, w, C_out)
Model = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


def text_context(text_encoder, prompt_ids: jax.Array, negative_ids: jax.Array, uncond_first: bool):
    """CLIP states of both CFG halves stacked in the stage's order: ``(2B, L, D)``."""
    return guidance.batch(text_encoder(negative_ids), text_encoder(prompt_ids), uncond_first)


def sample(
    model: Model,
    sampler: str,
    plan: plan_lib.Plan,
    latents: jax.Array,
    key: jax.Array,
    context: jax.Array,
    guidance_scale: jax.Array | float,
    uncond_first: bool,
    *,
    with_progress: bool = False,
) -> jax.Array:
    """Run every step of `plan` from `latents` ``(B, F, h, w, C)`` (already scaled by the sampler's
    initial σ); returns the denoised latents ``(B, F, h, w, C)``."""

    def body(i, state):
        x = samplers.scale_model_input(sampler, plan, state)  # (B, F, h, w, C)
        t = jnp.full((2 * x.shape[0],), plan.timesteps[i])
        out = model(jnp.concatenate([x, x]), t, context)  # (2B, F, h, w, C): both CFG halves at once
        if with_progress:
            progress.report(i)
        return samplers.step(sampler, plan, state, guidance.combine(out, guidance_scale, uncond_first))

    return jax.lax.fori_loop(0, plan.num_steps, body, samplers.init(latents, key)).sample
