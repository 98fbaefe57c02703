"""The sampler registry: one interface over DDPM, DDIM, DPM-Solver++(2M) and Euler.

    plan = samplers.make_plan("ddim", schedule_config, steps=50, spacing="leading", steps_offset=1)
    state = samplers.init(plan, latents * samplers.init_noise_sigma("ddim", plan, "leading"), key)
    def body(i, state):
        x = samplers.scale_model_input("ddim", plan, state)
        out = model(x, plan.timesteps[i])
        return samplers.step("ddim", plan, state, out)
    state = jax.lax.fori_loop(0, plan.num_steps, body, state)

Every function is pure and jit-friendly; the sampler name and options are static. The timestep
lists follow each diffusers scheduler's own `set_timesteps` (they differ between schedulers) or one
of LaVie's exact lists (`timesteps.SPACINGS`).
"""

from __future__ import annotations

import jax
import numpy as np

from lavie_jax.diffusion import ddim, ddpm, dpm_solver, euler
from lavie_jax.diffusion import plan as plan_lib
from lavie_jax.diffusion import schedule as schedule_lib
from lavie_jax.diffusion import timesteps as timesteps_lib

NAMES = ("ddpm", "ddim", "dpm++2m", "euler")
init = plan_lib.init_state


def _check_name(name: str) -> None:
    if name not in NAMES:
        raise ValueError(f"sampler={name!r}; expected one of {NAMES}")


def _sigma_solver_timesteps(name: str, spacing: str, steps: int, n: int, steps_offset: int) -> np.ndarray:
    """DPM-Solver and Euler space their steps differently from DDPM/DDIM in diffusers."""
    if name == "dpm++2m" and spacing == "linspace":  # steps + 1 points, the last dropped
        return np.linspace(0, n - 1, steps + 1).round()[::-1][:-1].astype(np.int64)
    if name == "dpm++2m" and spacing == "leading":
        ratio = n // (steps + 1)
        return (np.arange(steps + 1) * ratio).round()[::-1][:-1].astype(np.int64) + steps_offset
    if name == "euler" and spacing == "linspace":  # not rounded: σ is interpolated between timesteps
        return np.linspace(0, n - 1, steps, dtype=np.float32)[::-1].copy()
    return timesteps_lib.make_timesteps(spacing, steps, n, steps_offset=steps_offset)


def make_plan(
    name: str,
    config: schedule_lib.ScheduleConfig,
    steps: int,
    *,
    spacing: str = "leading",
    steps_offset: int = 0,
    set_alpha_to_one: bool = True,
    timesteps: np.ndarray | None = None,
) -> plan_lib.Plan:
    """The step plan of sampler `name`. `timesteps` overrides the spacing with an explicit list.

    The target of a step is the next timestep in the list, except for DDIM, whose target is
    ``t − N/steps`` as in diffusers (the same for uniform spacings, not for rounded 'linspace') —
    but the next entry for LaVie's respaced interpolation list (OpenAI's respacing). Past the end,
    DDIM's ᾱ is 1 when `set_alpha_to_one` else ᾱ_0; DDPM always uses 1.
    """
    _check_name(name)
    n = config.num_train_timesteps
    if timesteps is None:
        if name in ("dpm++2m", "euler"):
            timesteps = _sigma_solver_timesteps(name, spacing, steps, n, steps_offset)
        else:
            timesteps = timesteps_lib.make_timesteps(spacing, steps, n, steps_offset=steps_offset)
    timesteps = np.asarray(timesteps)
    if timesteps.ndim != 1 or len(timesteps) < 1:
        raise ValueError(f"timesteps={timesteps!r}: expected a non-empty 1-D list")
    prev = None
    if name == "ddim" and spacing != "lavie_interpolation" and len(timesteps) == steps:
        prev = np.asarray(timesteps, np.int64) - n // steps
    final_alpha = None
    if name == "ddim" and not set_alpha_to_one:
        final_alpha = float(schedule_lib.alphas_cumprod(config)[0])
    return plan_lib.make(config, timesteps, prev_timesteps=prev, final_alpha=final_alpha)


def init_noise_sigma(name: str, plan: plan_lib.Plan, spacing: str = "leading") -> float:
    """The scale of the initial noise: 1, except for Euler (σ_max; √(σ_max²+1) for 'leading')."""
    _check_name(name)
    if name != "euler":
        return 1.0
    sigma_max = float(np.max(np.asarray(plan.sigmas)))
    return sigma_max if spacing in ("linspace", "trailing") else (sigma_max**2 + 1) ** 0.5


def scale_model_input(name: str, plan: plan_lib.Plan, state: plan_lib.SamplerState) -> jax.Array:
    return euler.scale_model_input(plan, state) if name == "euler" else state.sample


def step(
    name: str,
    plan: plan_lib.Plan,
    state: plan_lib.SamplerState,
    model_output: jax.Array,
    *,
    eta: float = 0.0,
    noise: jax.Array | None = None,
) -> plan_lib.SamplerState:
    """One denoising step; `noise` overrides the state's key for stochastic steps (DDPM, DDIM η>0)."""
    _check_name(name)
    if name == "ddpm":
        return ddpm.step(plan, state, model_output, noise=noise)
    if name == "ddim":
        return ddim.step(plan, state, model_output, eta=eta, noise=noise)
    if name == "dpm++2m":
        return dpm_solver.step(plan, state, model_output)
    return euler.step(plan, state, model_output)
