"""Diffusion: noise schedules, timestep lists, samplers (DDPM, DDIM, DPM-Solver++ 2M, Euler) and
training losses, as pure functions over small pytrees (usable inside ``jit`` / ``lax.fori_loop``).

``schedule`` (β, ᾱ, forward process, prediction conversions), ``timesteps`` (diffusers' spacings and
LaVie's exact lists), ``plan`` (the per-step arrays a sampler indexes and the loop state),
``ddpm`` / ``ddim`` / ``dpm_solver`` / ``euler`` (one step each), ``samplers`` (the registry:
``get_sampler(name)``) and ``losses`` (training targets and weights).
"""

from lavie_jax.diffusion import (  # noqa: F401
    ddim,
    ddpm,
    dpm_solver,
    euler,
    losses,
    plan,
    samplers,
    schedule,
    timesteps,
)
