"""Euler's method on the probability-flow ODE in σ-space (Karras et al. 2022, eq. 3; their Algorithm 2
with S_churn = 0 and without the Heun correction), as diffusers' EulerDiscreteScheduler.

σ_t = √((1 − ᾱ_t)/ᾱ_t) is interpolated at the (possibly fractional) timesteps (`Plan.sigmas`, final σ = 0).
The model sees ``x / √(σ²+1)``; ``dx/dσ = (x − x̂0)/σ``;  ``x_next = x + (σ_next − σ) · dx/dσ``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lavie_jax.diffusion import plan as plan_lib


def scale_model_input(plan: plan_lib.Plan, state: plan_lib.SamplerState) -> jax.Array:
    """``x / √(σ²+1)``: the variance-preserving x_t the model was trained on."""
    sigma = plan.sigmas[state.index]
    return state.sample / jnp.sqrt(sigma**2 + 1.0)


def step(plan: plan_lib.Plan, state: plan_lib.SamplerState, model_output: jax.Array) -> plan_lib.SamplerState:
    """One Euler step from σ_i to σ_{i+1}; `model_output` is the prediction for the scaled input."""
    i, x = state.index, state.sample
    sigma, sigma_next = plan.sigmas[i], plan.sigmas[i + 1]
    if plan.prediction_type == "epsilon":
        x0 = x - sigma * model_output
    elif plan.prediction_type == "v_prediction":  # v in the scaled input's frame (diffusers' convention)
        x0 = model_output * (-sigma / jnp.sqrt(sigma**2 + 1.0)) + x / (sigma**2 + 1.0)
    else:
        x0 = model_output
    derivative = (x - x0) / sigma
    x_prev = x + (sigma_next - sigma) * derivative
    return state.replace(sample=x_prev.astype(x.dtype), index=i + 1)
