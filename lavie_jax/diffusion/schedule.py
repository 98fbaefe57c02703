"""Noise schedules (β, ᾱ) and the forward process, as pure functions.

`ScheduleConfig` carries diffusers' scheduler-config vocabulary. β and ᾱ are computed on the host in
float32 exactly as diffusers does with torch (``linspace`` then ``cumprod`` in fp32), or in float64
and cast (``alphas_dtype="float64"``: the interpolation stage's OpenAI-style diffusion, spec §3.4).
`Schedule` is the small jnp pytree used inside jitted code (training losses, noise augmentation).
"""

from __future__ import annotations

import dataclasses
import math

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
    num_train_timesteps: int = 1000
    beta_start: float = 0.0001
    beta_end: float = 0.02
    beta_schedule: str = "linear"
    prediction_type: str = "epsilon"
    alphas_dtype: str = "float32"  # "float64": computed in float64 then cast (OpenAI / LaVie interpolation)

    def __post_init__(self):
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"beta_schedule={self.beta_schedule!r}; expected one of {BETA_SCHEDULES}")
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type={self.prediction_type!r}; expected one of {PREDICTION_TYPES}")
        if self.alphas_dtype not in ("float32", "float64"):
            raise ValueError(f"alphas_dtype={self.alphas_dtype!r}; expected 'float32' or 'float64'")
        if self.num_train_timesteps < 2:
            raise ValueError(f"num_train_timesteps={self.num_train_timesteps}; expected ≥ 2")

    @classmethod
    def from_dict(cls, d: dict) -> ScheduleConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _linspace(start: float, end: float, n: int, dtype: np.dtype) -> np.ndarray:
    """``torch.linspace`` in float32, bit for bit; ``numpy.linspace`` in float64.

    torch (CPU) computes ``step = (end − start)/(n − 1)`` in float32, then the first half from the
    start and the second half from the end, each as one fused multiply-add: ``fma(step, i, start)``
    and ``fma(−step, n − 1 − i, end)``. A float32 product is exact in float64, so rounding the float64
    sum once more to float32 reproduces the fused result.
    """
    if dtype == np.float64:
        return np.linspace(start, end, n, dtype=np.float64)
    start32, end32 = np.float32(start), np.float32(end)
    step = (end32 - start32) / np.float32(n - 1)  # float32 arithmetic, as torch
    i = np.arange(n)
    from_start = step.astype(np.float64) * i.astype(np.float32) + np.float64(start32)
    from_end = -step.astype(np.float64) * (n - 1 - i).astype(np.float32) + np.float64(end32)
    return np.where(i < n // 2, from_start, from_end).astype(np.float32)


def betas(config: ScheduleConfig) -> np.ndarray:
    n, dtype = config.num_train_timesteps, np.dtype(config.alphas_dtype)
    if config.beta_schedule == "linear":
        return _linspace(config.beta_start, config.beta_end, n, dtype)
    if config.beta_schedule == "scaled_linear":  # linear in √β (the SD and ×4-upscaler schedules)
        root = _linspace(config.beta_start**0.5, config.beta_end**0.5, n, dtype)
        return root * root
    # squaredcos_cap_v2: Nichol & Dhariwal 2021 eq. 17, ᾱ(t) = cos²((t + 0.008)/1.008 · π/2), β ≤ 0.999.
    ab = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    return np.array([min(1 - ab((i + 1) / n) / ab(i / n), 0.999) for i in range(n)], dtype=np.float64).astype(
        dtype
    )


def alphas_cumprod(config: ScheduleConfig) -> np.ndarray:
    """ᾱ_t = ∏_{s≤t} (1 − β_s) as float32 (DDPM eq. 4's notation).

    torch's fp32 ``cumprod`` on CPU accumulates in double; so do we. With `_linspace` this gives
    diffusers' float32 ᾱ bit for bit. ``alphas_dtype="float64"``: OpenAI's float64 ᾱ, cast at the end.
    """
    alphas = (1.0 - betas(config)).astype(np.dtype(config.alphas_dtype))
    return np.cumprod(alphas.astype(np.float64)).astype(np.float32)


@flax.struct.dataclass
class Schedule:
    alphas_cumprod: jax.Array  # (N,) float32
    prediction_type: str = flax.struct.field(pytree_node=False, default="epsilon")

    @property
    def num_train_timesteps(self) -> int:
        return self.alphas_cumprod.shape[0]


def make_schedule(config: ScheduleConfig) -> Schedule:
    return Schedule(jnp.asarray(alphas_cumprod(config)), config.prediction_type)


def _coefficients(schedule: Schedule, t: jax.Array, ndim: int) -> tuple[jax.Array, jax.Array]:
    """√ᾱ_t and √(1−ᾱ_t), shaped to broadcast over a ``(B, ...)`` array of rank `ndim`."""
    ab = schedule.alphas_cumprod[jnp.asarray(t, jnp.int32)].reshape(-1, *([1] * (ndim - 1)))
    return jnp.sqrt(ab), jnp.sqrt(1.0 - ab)


def add_noise(schedule: Schedule, x0: jax.Array, noise: jax.Array, t: jax.Array) -> jax.Array:
    """q(x_t | x_0): ``√ᾱ_t x0 + √(1−ᾱ_t) ε`` (DDPM eq. 4)."""
    a, s = _coefficients(schedule, t, x0.ndim)
    return a * x0 + s * noise


def velocity(schedule: Schedule, x0: jax.Array, noise: jax.Array, t: jax.Array) -> jax.Array:
    """The v target ``√ᾱ_t ε − √(1−ᾱ_t) x0`` (Salimans & Ho 2022, §4)."""
    a, s = _coefficients(schedule, t, x0.ndim)
    return a * noise - s * x0


def to_x0_and_eps(
    prediction_type: str, model_output: jax.Array, x_t: jax.Array, alpha_cumprod: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Convert a model prediction at ᾱ_t into (x̂0, ε̂), using ``x_t = √ᾱ x0 + √(1−ᾱ) ε``:
    from ε, ``x̂0 = (x_t − √(1−ᾱ) ε)/√ᾱ`` (DDPM eq. 15); from v, ``x̂0 = √ᾱ x_t − √(1−ᾱ) v`` and
    ``ε̂ = √ᾱ v + √(1−ᾱ) x_t`` (Salimans & Ho 2022, §4); from x0, ``ε̂ = (x_t − √ᾱ x0)/√(1−ᾱ)``."""
    a, s = jnp.sqrt(alpha_cumprod), jnp.sqrt(1.0 - alpha_cumprod)
    if prediction_type == "epsilon":
        return (x_t - s * model_output) / a, model_output
    if prediction_type == "v_prediction":
        return a * x_t - s * model_output, a * model_output + s * x_t
    if prediction_type == "sample":
        return model_output, (x_t - a * model_output) / s
    raise ValueError(f"prediction_type={prediction_type!r}; expected one of {PREDICTION_TYPES}")


def from_x0_and_eps(
    prediction_type: str, x0: jax.Array, eps: jax.Array, alpha_cumprod: jax.Array
) -> jax.Array:
    """The prediction of kind `prediction_type` for a given (x0, ε) at ᾱ_t: the inverse of
    `to_x0_and_eps` (ε itself, ``v = √ᾱ ε − √(1−ᾱ) x0``, or x0). `alpha_cumprod` broadcasts."""
    if prediction_type == "epsilon":
        return eps
    if prediction_type == "v_prediction":
        return jnp.sqrt(alpha_cumprod) * eps - jnp.sqrt(1.0 - alpha_cumprod) * x0
    if prediction_type == "sample":
        return x0
    raise ValueError(f"prediction_type={prediction_type!r}; expected one of {PREDICTION_TYPES}")


def snr(schedule: Schedule, t: jax.Array) -> jax.Array:
    """Signal-to-noise ratio ᾱ_t / (1 − ᾱ_t)."""
    ab = schedule.alphas_cumprod[jnp.asarray(t, jnp.int32)]
    return ab / (1.0 - ab)
