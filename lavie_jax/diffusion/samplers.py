"""The sampler registry: one interface over DDPM, DDIM, DPM-Solver++(2M) and Euler.

    sampler = samplers.get_sampler("ddim")
    plan = sampler.make_plan(schedule_config, 50, spacing="leading", steps_offset=1)
    state = sampler.init(latents * sampler.init_noise_sigma(plan, "leading"), key)
    def body(i, state):
        x = sampler.scale_model_input(plan, state)
        return sampler.step(plan, state, model(x, plan.timesteps[i]))
    state = jax.lax.fori_loop(0, plan.num_steps, body, state)

The same functions exist keyed by name (``samplers.step("ddim", plan, state, out)``). Every one is
pure and jit-friendly: the sampler name and its options (η, clipping) are static, the step counter
lives in the state, and everything a step needs is precomputed in the `Plan` (`plan.py`). The
timestep lists follow each diffusers scheduler's own ``set_timesteps`` (they differ between
schedulers) or one of LaVie's exact lists (`timesteps.SPACINGS`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import numpy as np

from lavie_jax.diffusion import ddim, ddpm, dpm_solver, euler
from lavie_jax.diffusion import plan as plan_lib
from lavie_jax.diffusion import schedule as schedule_lib
from lavie_jax.diffusion import timesteps as timesteps_lib

NAMES = timesteps_lib.SAMPLERS  # ("ddpm", "ddim", "dpm++2m", "euler")
DIFFUSERS_SPACINGS = ("leading", "trailing", "linspace")
init = plan_lib.init_state


class Sampler(NamedTuple):
    """One sampler's functions; `step` takes the algorithm's own keyword options (see its module)."""

    name: str
    make_plan: Callable[
        ..., plan_lib.Plan
    ]  # (config, steps, *, spacing, steps_offset, set_alpha_to_one, timesteps)
    init: Callable[..., plan_lib.SamplerState]  # (sample, key=None)
    init_noise_sigma: Callable[..., float]  # (plan, spacing="leading")
    scale_model_input: Callable[[plan_lib.Plan, plan_lib.SamplerState], jax.Array]
    step: Callable[..., plan_lib.SamplerState]  # (plan, state, model_output, **options)


def _check_name(name: str) -> None:
    if name not in NAMES:
        raise ValueError(f"sampler={name!r}; expected one of {NAMES}")


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
    """The step plan of sampler `name` for `steps` steps: `spacing` (`timesteps.SPACINGS`), or an
    explicit descending list `timesteps` of length `steps`.

    A step goes from its timestep to the next entry of the list (−1 after the last), which makes
    custom and respaced lists work — except DDIM with a diffusers spacing, whose target is
    ``t − N // steps`` as diffusers computes it (the same for uniform lists, not for rounded ones).
    A negative target takes the final ᾱ: for DDIM 1 if `set_alpha_to_one` else ᾱ_0 (diffusers'
    ``final_alpha_cumprod``); DDPM always uses 1 (diffusers' DDPM ignores `set_alpha_to_one`).
    """
    _check_name(name)
    n = config.num_train_timesteps
    explicit = timesteps is not None
    if not explicit:
        timesteps = timesteps_lib.make_timesteps(spacing, steps, n, steps_offset=steps_offset, sampler=name)
    timesteps = np.asarray(timesteps)
    if timesteps.shape != (steps,):
        raise ValueError(
            f"timesteps of shape {timesteps.shape}: expected a 1-D list of steps={steps} entries"
        )
    if not (np.all(np.diff(timesteps) < 0) and timesteps[-1] >= 0 and timesteps[0] <= n - 1):
        raise ValueError(
            f"timesteps={timesteps.tolist()}: expected strictly descending values in [0, {n - 1}]"
        )
    prev = None
    if name == "ddim" and spacing in DIFFUSERS_SPACINGS and not explicit:
        prev = np.asarray(timesteps, np.int64) - n // steps
    final_alpha = None
    if name == "ddim" and not set_alpha_to_one:
        final_alpha = float(schedule_lib.alphas_cumprod(config)[0])
    return plan_lib.make(config, timesteps, prev_timesteps=prev, final_alpha=final_alpha)


def init_noise_sigma(name: str, plan: plan_lib.Plan, spacing: str = "leading") -> float:
    """The scale of the initial noise: 1, except for Euler (σ_max for 'linspace'/'trailing', else
    √(σ_max²+1), as diffusers' EulerDiscreteScheduler)."""
    _check_name(name)
    if name != "euler":
        return 1.0
    sigma_max = float(np.max(np.asarray(plan.sigmas)))
    return sigma_max if spacing in ("linspace", "trailing") else (sigma_max**2 + 1) ** 0.5


def scale_model_input(name: str, plan: plan_lib.Plan, state: plan_lib.SamplerState) -> jax.Array:
    """What the model sees at this step: the sample itself, except Euler's ``x / √(σ²+1)``."""
    _check_name(name)
    return euler.scale_model_input(plan, state) if name == "euler" else state.sample


def step(
    name: str,
    plan: plan_lib.Plan,
    state: plan_lib.SamplerState,
    model_output: jax.Array,
    *,
    eta: float = 0.0,
    clip_sample: float | None = None,
    use_clipped_model_output: bool = False,
    noise: jax.Array | None = None,
) -> plan_lib.SamplerState:
    """One denoising step. Static options: `eta` (DDIM), `clip_sample` (DDPM/DDIM: clip x̂0 to
    ±value), `use_clipped_model_output` (DDIM: re-derive ε̂ from the clipped x̂0). `noise` overrides
    the state's key for stochastic steps (DDPM, DDIM with η > 0)."""
    _check_name(name)
    if eta and name != "ddim":
        raise ValueError(f"eta={eta}: only the 'ddim' sampler takes η, not {name!r}")
    if clip_sample is not None and name not in ("ddpm", "ddim"):
        raise ValueError(f"clip_sample={clip_sample}: only 'ddpm' and 'ddim' clip x̂0, not {name!r}")
    if name == "ddpm":
        return ddpm.step(plan, state, model_output, clip_sample=clip_sample, noise=noise)
    if name == "ddim":
        return ddim.step(
            plan,
            state,
            model_output,
            eta=eta,
            clip_sample=clip_sample,
            use_clipped_model_output=use_clipped_model_output,
            noise=noise,
        )
    if name == "dpm++2m":
        return dpm_solver.step(plan, state, model_output)
    return euler.step(plan, state, model_output)


def get_sampler(name: str) -> Sampler:
    """The functions of sampler `name` (one of `NAMES`), with the name bound."""
    _check_name(name)
    return Sampler(
        name=name,
        make_plan=functools.partial(make_plan, name),
        init=init,
        init_noise_sigma=functools.partial(init_noise_sigma, name),
        scale_model_input=functools.partial(scale_model_input, name),
        step=functools.partial(step, name),
    )
