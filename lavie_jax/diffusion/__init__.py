"""Diffusion: noise schedules, timestep lists, samplers (DDPM, DDIM, DPM-Solver++ 2M, Euler) and
training losses, as pure functions over small pytrees (usable inside ``jit`` / ``lax.fori_loop``)."""

from lavie_jax.diffusion import losses, plan, samplers, schedule, timesteps  # noqa: F401
