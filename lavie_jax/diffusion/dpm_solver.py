"""DPM-Solver++(2M), multistep, data prediction, midpoint form (Lu et al. 2022, Algorithm 2).

In σ-space (α_t = 1/√(σ²+1), σ'_t = σ α_t, λ = log α_t − log σ'_t, h = λ_t − λ_s):
    1st order:  x_t = σ'_t/σ'_s · x − α_t (e^{−h} − 1) · x̂0
    2nd order:  D1 = (x̂0 − x̂0_prev) / r,  r = (λ_s − λ_prev)/h;   subtract ½ α_t (e^{−h} − 1) · D1 as well
The first step is first order (no history), and so is the last (σ_final = 0: "lower_order_final").
These are diffusers' DPMSolverMultistepScheduler defaults (algorithm_type "dpmsolver++", solver_order 2,
solver_type "midpoint", final_sigmas_type "zero"); x̂0 is carried in `SamplerState.history`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lavie_jax.diffusion import plan as plan_lib
from lavie_jax.diffusion import schedule as schedule_lib


def _alpha_sigma_lambda(sigma: jax.Array):
    alpha = 1.0 / jnp.sqrt(sigma**2 + 1.0)
    sigma_t = sigma * alpha
    return alpha, sigma_t, jnp.log(alpha) - jnp.log(sigma_t)


def step(plan: plan_lib.Plan, state: plan_lib.SamplerState, model_output: jax.Array) -> plan_lib.SamplerState:
    """One multistep update σ_i → σ_{i+1}. Both orders are computed and one is selected with
    ``jnp.where`` (the unused one may be inf/NaN at the first and last steps; it is never selected)."""
    i, x = state.index, state.sample
    alpha_s, sigma_s, lambda_s = _alpha_sigma_lambda(plan.sigmas[i])
    alpha_t, sigma_t, lambda_t = _alpha_sigma_lambda(plan.sigmas[i + 1])
    _, _, lambda_prev = _alpha_sigma_lambda(plan.sigmas[jnp.maximum(i - 1, 0)])
    # The model's ᾱ in σ terms is α_s²; the x̂0 conversion is the usual one.
    x0, _ = schedule_lib.to_x0_and_eps(plan.prediction_type, model_output, x, alpha_s**2)
    h = lambda_t - lambda_s
    phi = alpha_t * (jnp.exp(-h) - 1.0)
    first = (sigma_t / sigma_s) * x - phi * x0
    r = (lambda_s - lambda_prev) / h
    second = first - 0.5 * phi * (x0 - state.history) / r
    use_first = (i == 0) | (i == plan.num_steps - 1)
    x_prev = jnp.where(use_first, first, second)
    return state.replace(sample=x_prev.astype(x.dtype), index=i + 1, history=x0.astype(x.dtype))
