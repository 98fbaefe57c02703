"""DDPM ancestral sampling with the "fixed_small" variance (Ho et al. 2020, eqs. 6–7).

    x̂0 from the prediction;  μ = √ᾱ_prev β_t / (1−ᾱ_t) · x̂0 + √α_t (1−ᾱ_prev) / (1−ᾱ_t) · x_t      (eq. 7)
    σ² = max((1−ᾱ_prev) / (1−ᾱ_t) · β_t, 1e-20);   x_prev = μ + σ z   (no noise at t = 0)
with β_t = 1 − ᾱ_t/ᾱ_prev (the effective β between two inference timesteps), as diffusers'
DDPMScheduler with ``variance_type="fixed_small"``. ᾱ_prev comes from the plan's next timestep (1 after
the last), so LaVie's 980 … 0 list reproduces its ``prev = t − 20`` rule (spec §2.4).
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
    clip_sample: float | None = None,
    noise: jax.Array | None = None,
) -> plan_lib.SamplerState:
    """One ancestral step. `clip_sample` clips x̂0 to ±value (static); `noise` replaces the state's key
    (`plan.step_noise`), e.g. to replay another implementation's draws."""
    i, x = state.index, state.sample
    a_t, a_prev = plan.alpha[i], plan.alpha_prev[i]
    beta_t = 1.0 - a_t / a_prev
    x0, _ = schedule_lib.to_x0_and_eps(plan.prediction_type, model_output, x, a_t)
    if clip_sample is not None:
        x0 = jnp.clip(x0, -clip_sample, clip_sample)
    mean = (jnp.sqrt(a_prev) * beta_t / (1.0 - a_t)) * x0 + (
        jnp.sqrt(a_t / a_prev) * (1.0 - a_prev) / (1.0 - a_t)
    ) * x
    variance = jnp.maximum((1.0 - a_prev) / (1.0 - a_t) * beta_t, 1e-20)
    z = plan_lib.step_noise(state, noise)
    x_prev = mean + jnp.where(plan.noisy[i], jnp.sqrt(variance), 0.0) * z
    return state.replace(sample=x_prev.astype(x.dtype), index=i + 1)
