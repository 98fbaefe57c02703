"""DDIM (Song et al. 2021, eq. 12), with η for the stochastic family.

    x_prev = √ᾱ_prev · x̂0 + √(1 − ᾱ_prev − σ²) · ε̂ + σ z,   σ = η √((1−ᾱ_prev)/(1−ᾱ_t)) √(1 − ᾱ_t/ᾱ_prev)
η = 0 is deterministic. x̂0 and ε̂ come from an ε, v or x0 prediction.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lavie_jax.diffusion import plan as plan_lib
from lavie_jax.diffusion import schedule as schedule_lib


def step(
    plan: plan_lib.Plan,
    state: plan_lib.SamplerState,
    model_output: jax.Array,
    *,
    eta: float = 0.0,
    clip_sample: float | None = None,
    use_clipped_model_output: bool = False,
    noise: jax.Array | None = None,
) -> plan_lib.SamplerState:
    """One step ``x_t → x_prev``. `clip_sample` clips x̂0 to ±value; with `use_clipped_model_output`
    ε̂ is then re-derived from the clipped x̂0 (GLIDE's choice; diffusers' default keeps the model's).
    `noise` replaces the state's key for η > 0 (`plan.step_noise`)."""
    i, x = state.index, state.sample
    a_t, a_prev = plan.alpha[i], plan.alpha_prev[i]
    x0, eps = schedule_lib.to_x0_and_eps(plan.prediction_type, model_output, x, a_t)
    if clip_sample is not None:
        x0 = jnp.clip(x0, -clip_sample, clip_sample)
        if use_clipped_model_output:
            eps = (x - jnp.sqrt(a_t) * x0) / jnp.sqrt(1.0 - a_t)
    x_prev = jnp.sqrt(a_prev) * x0
    if eta:
        std = eta * jnp.sqrt((1.0 - a_prev) / (1.0 - a_t) * (1.0 - a_t / a_prev))
        x_prev = x_prev + jnp.sqrt(1.0 - a_prev - std**2) * eps + std * plan_lib.step_noise(state, noise)
    else:
        x_prev = x_prev + jnp.sqrt(1.0 - a_prev) * eps
    return state.replace(sample=x_prev.astype(x.dtype), index=i + 1)
