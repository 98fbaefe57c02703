"""Training objectives: the ε / v / x0 target, per-example MSE, min-SNR-γ weighting, noise offset
and uniform timestep sampling (DDPM Algorithm 1 with the objective of the model's `prediction_type`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lavie_jax.diffusion import schedule as schedule_lib


def sample_timesteps(key: jax.Array, batch: int, num_train_timesteps: int) -> jax.Array:
    """Uniform integer timesteps in ``[0, N)`` (DDPM Algorithm 1)."""
    return jax.random.randint(key, (batch,), 0, num_train_timesteps)


def offset_noise(key: jax.Array, shape: tuple[int, ...], strength: float) -> jax.Array:
    """Gaussian noise plus `strength` × a per-(example, channel) constant (Guttenberg 2023, "noise
    offset"), so the model can learn to change an image's mean brightness. Shape (B, ..., C)."""
    k1, k2 = jax.random.split(key)
    noise = jax.random.normal(k1, shape)
    if strength:
        offset_shape = (shape[0],) + (1,) * (len(shape) - 2) + (shape[-1],)
        noise = noise + strength * jax.random.normal(k2, offset_shape)
    return noise


def training_target(
    schedule: schedule_lib.Schedule, x0: jax.Array, noise: jax.Array, t: jax.Array, prediction_type: str
) -> jax.Array:
    """What the model should output at ``x_t = add_noise(schedule, x0, noise, t)``: ε, v or x0."""
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        return schedule_lib.velocity(schedule, x0, noise, t)
    if prediction_type == "sample":
        return x0
    raise ValueError(f"prediction_type={prediction_type!r}; expected one of {schedule_lib.PREDICTION_TYPES}")


def min_snr_weight(
    schedule: schedule_lib.Schedule, t: jax.Array, gamma: float | None, prediction_type: str
) -> jax.Array:
    """Min-SNR-γ loss weights (Hang et al. 2023): ``min(SNR, γ)`` on the x0 loss, which is
    ``min(SNR, γ)/SNR`` on the ε loss and ``min(SNR, γ)/(SNR + 1)`` on the v loss; ones when γ is None."""
    if prediction_type not in schedule_lib.PREDICTION_TYPES:
        raise ValueError(
            f"prediction_type={prediction_type!r}; expected one of {schedule_lib.PREDICTION_TYPES}"
        )
    snr = schedule_lib.snr(schedule, t)
    if gamma is None:
        return jnp.ones_like(snr)
    clipped = jnp.minimum(snr, gamma)
    if prediction_type == "epsilon":
        return clipped / snr
    if prediction_type == "v_prediction":
        return clipped / (snr + 1.0)
    return clipped


def diffusion_loss(
    schedule: schedule_lib.Schedule,
    prediction: jax.Array,
    target: jax.Array,
    t: jax.Array,
    *,
    prediction_type: str,
    min_snr_gamma: float | None = None,
) -> jax.Array:
    """Per-example weighted MSE ``(B,)``: mean over every non-batch axis."""
    err = jnp.mean(
        jnp.square(prediction.astype(jnp.float32) - target.astype(jnp.float32)),
        axis=tuple(range(1, prediction.ndim)),
    )
    return err * min_snr_weight(schedule, t, min_snr_gamma, prediction_type)
