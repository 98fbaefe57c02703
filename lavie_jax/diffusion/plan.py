"""What a sampler needs to know about its steps, precomputed on the host: the `Plan` pytree.

Every sampler step indexes these arrays with the step counter, so the whole loop is a
``lax.fori_loop`` over static shapes. ``alpha``/``alpha_prev`` serve DDPM and DDIM, ``sigmas`` the
σ-parameterised solvers (Euler, DPM-Solver++), where ``σ_t = √((1 − ᾱ_t)/ᾱ_t)``.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from lavie_jax.diffusion import schedule as schedule_lib


@flax.struct.dataclass
class Plan:
    timesteps: jax.Array  # (S,) float32: the timestep the model is given at each step
    alpha: jax.Array  # (S,) ᾱ_t
    alpha_prev: jax.Array  # (S,) ᾱ of the step's target timestep (the final-alpha rule applied)
    sigmas: jax.Array  # (S + 1,) σ at each step and the final σ (0)
    noisy: jax.Array  # (S,) bool: whether a stochastic sampler adds noise at this step
    prediction_type: str = flax.struct.field(pytree_node=False, default="epsilon")

    @property
    def num_steps(self) -> int:
        return self.timesteps.shape[0]


def make(
    config: schedule_lib.ScheduleConfig,
    timesteps: np.ndarray,
    *,
    prev_timesteps: np.ndarray | None = None,
    final_alpha: float | None = None,
    sigma_timesteps: np.ndarray | None = None,
) -> Plan:
    """Build a plan. `prev_timesteps` default to the next entry (−1 after the last); a negative previous
    timestep takes `final_alpha` (default 1). σ are interpolated at `sigma_timesteps` (default the
    timesteps) as diffusers does, then the final σ = 0 is appended."""
    ab = schedule_lib.alphas_cumprod(config)  # (N,) float32
    timesteps = np.asarray(timesteps)
    if prev_timesteps is None:
        prev_timesteps = np.append(timesteps[1:], -1)
    t_int = np.asarray(np.round(timesteps), np.int64)
    prev = np.asarray(prev_timesteps, np.int64)
    final = np.float32(1.0 if final_alpha is None else final_alpha)
    alpha_prev = np.where(prev >= 0, ab[np.clip(prev, 0, None)], final).astype(np.float32)
    all_sigmas = ((1 - ab) / ab) ** 0.5  # float32, as torch computes it
    at = timesteps if sigma_timesteps is None else sigma_timesteps
    sigmas = np.append(np.interp(np.asarray(at, np.float64), np.arange(len(ab)), all_sigmas), 0.0)
    return Plan(
        timesteps=jnp.asarray(timesteps, jnp.float32),
        alpha=jnp.asarray(ab[t_int]),
        alpha_prev=jnp.asarray(alpha_prev),
        sigmas=jnp.asarray(sigmas.astype(np.float32)),
        noisy=jnp.asarray(t_int > 0),
        prediction_type=config.prediction_type,
    )


@flax.struct.dataclass
class SamplerState:
    """The loop carry: the current sample, the step counter, a PRNG key for stochastic steps, and the
    previous x̂0 (DPM-Solver++'s multistep history; zeros for the one-step samplers)."""

    sample: jax.Array
    index: jax.Array  # () int32
    key: jax.Array
    history: jax.Array


def init_state(sample: jax.Array, key: jax.Array | None = None) -> SamplerState:
    key = jax.random.key(0) if key is None else key
    return SamplerState(sample, jnp.zeros((), jnp.int32), key, jnp.zeros_like(sample))


def step_noise(state: SamplerState, noise: jax.Array | None) -> jax.Array:
    """The noise a stochastic step adds: given explicitly (tests, reproducing others) or drawn from
    the state's key folded with the step index (so a step's noise does not depend on the batch)."""
    if noise is not None:
        return noise
    return jax.random.normal(
        jax.random.fold_in(state.key, state.index), state.sample.shape, state.sample.dtype
    )
