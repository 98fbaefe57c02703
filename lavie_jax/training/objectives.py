"""The denoising objective of each stage, from clean latents to a scalar loss.

    base           ε- (or v-) prediction MSE on x_t, timesteps uniform in [0, T)         (spec §2)
    interpolation  the UNet sees ``cat([x_t, copied keyframes], C)``: output frame j is
                   conditioned on keyframe ⌊(j+1)/4⌋, i.e. ground-truth frame 4⌊(j+1)/4⌋  (spec §3.3)
    vsr            v-prediction; the UNet also gets the clip downsampled ×4 in pixel space and
                   noise-augmented at a random level ≤ max_noise_level (the scaled-linear low-res
                   schedule), the level doubling as the class label                       (spec §4.1, §4.3)

Randomness is drawn per example from its own key (`example_keys`), so a step gives the same result
on any mesh and a batch of 2k equals k accumulated micro-batches of 2.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lavie_jax.diffusion import losses
from lavie_jax.diffusion import schedule as schedule_lib

STAGES = ("base", "interpolation", "vsr")
KEYFRAME_STRIDE = 4  # the interpolation model makes 4× the frames: 16 keyframes → 61

# Independent random streams of one example (fold_in constants; never reorder).
TIMESTEP, NOISE, DROPOUT, LATENT, LEVEL, LOW_RES_NOISE = range(6)


def example_keys(rng: jax.Array, step: jax.Array, batch_size: int) -> jax.Array:
    """One key per example from its global index ``step·B + i`` → ``(B, 2)`` raw keys."""
    ids = step * batch_size + jnp.arange(batch_size)
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(rng, ids)


def stream(keys: jax.Array, which: int) -> jax.Array:
    return jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, which)


def per_example_normal(keys: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    return jax.vmap(lambda k: jax.random.normal(k, shape, dtype))(keys)  # (B, *shape)


def keyframe_indices(num_frames: int) -> np.ndarray:
    """Index of the ground-truth keyframe each output frame is conditioned on (spec §3.3).

    The base clip's frame k sits at 4k; ``repeat_interleave(4)[1:-2]`` of the keyframes gives frame j
    the keyframe ⌊(j+1)/4⌋: ``[0,0,0,4,4,4,4,8,…,56,60,60]`` for 61 frames.
    """
    if num_frames < 1 or (num_frames - 1) % KEYFRAME_STRIDE:
        raise ValueError(
            f"interpolation: num_frames={num_frames}; expected 4k+1 frames (keyframes at 0, 4, …), e.g. 61"
        )
    return KEYFRAME_STRIDE * ((np.arange(num_frames) + 1) // KEYFRAME_STRIDE)


def copied_keyframes(latents: jax.Array) -> jax.Array:
    """``(B, F, h, w, c)`` → ``(B, F, h, w, c)``: every frame replaced by its conditioning keyframe."""
    return latents[:, keyframe_indices(latents.shape[1])]


def downsample(video: jax.Array, factor: int) -> jax.Array:
    """``(B, F, H, W, 3)`` → ``(B, F, H/f, W/f, 3)``: the mean of each f×f block (area downsampling)."""
    b, f, h, w, c = video.shape
    if h % factor or w % factor:
        raise ValueError(f"vsr: frame size {h}×{w} is not divisible by the ×{factor} downsampling")
    blocks = video.reshape(b, f, h // factor, factor, w // factor, factor, c)  # (B, F, h, f, w, f, 3)
    return blocks.mean(axis=(3, 5))


def diffusion_loss(
    apply_unet,
    latents: jax.Array,
    context: jax.Array,
    keys: jax.Array,
    *,
    stage: str,
    schedule: schedule_lib.Schedule,
    num_image_frames: int = 0,
    min_snr_gamma: float | None = None,
    noise_offset: float = 0.0,
    pixels: jax.Array | None = None,
    low_res_schedule: schedule_lib.Schedule | None = None,
    max_noise_level: int = 350,
    low_res_factor: int = 4,
) -> jax.Array:
    """Mean over the batch of the per-example (min-SNR weighted) MSE between the UNet output and
    its target (ε or v: ``schedule.prediction_type``).

    ``apply_unet(sample, timesteps, context, **extra) → (B, F, h, w, c_out)``; ``latents (B, F, h, w, c)``
    (video frames then `num_image_frames` images); `pixels` ``(B, F, H, W, 3)`` in [-1, 1] (vsr only).
    """
    if stage not in STAGES:
        raise ValueError(f"stage={stage!r}; expected one of {STAGES}")
    num_train_timesteps = schedule.num_train_timesteps
    latents = latents.astype(jnp.float32)
    t = jax.vmap(lambda k: losses.sample_timesteps(k, 1, num_train_timesteps)[0])(stream(keys, TIMESTEP))
    noise = jax.vmap(lambda k: losses.offset_noise(k, (1, *latents.shape[1:]), noise_offset)[0])(
        stream(keys, NOISE)
    )  # (B, F, h, w, c)
    sample = schedule_lib.add_noise(schedule, latents, noise, t)
    extra = {"num_image_frames": num_image_frames}
    if stage == "interpolation":
        sample = jnp.concatenate([sample, copied_keyframes(latents)], axis=-1)  # (B, F, h, w, 2c)
    elif stage == "vsr":
        if pixels is None or low_res_schedule is None:
            raise ValueError("vsr: pixels and low_res_schedule are required")
        low_res = downsample(pixels.astype(jnp.float32), low_res_factor)  # (B, F, h, w, 3)
        levels = jax.vmap(lambda k: jax.random.randint(k, (), 0, max_noise_level + 1))(stream(keys, LEVEL))
        low_noise = per_example_normal(stream(keys, LOW_RES_NOISE), low_res.shape[1:])
        extra["low_res"] = schedule_lib.add_noise(low_res_schedule, low_res, low_noise, levels)
        extra["class_labels"] = levels  # the noise level conditions the UNet (spec §4.1)
    prediction = apply_unet(sample, t, context, **extra)
    prediction_type = schedule.prediction_type
    target = losses.training_target(schedule, latents, noise, t, prediction_type)
    per_example = losses.diffusion_loss(
        schedule, prediction, target, t, prediction_type=prediction_type, min_snr_gamma=min_snr_gamma
    )  # (B,)
    return jnp.mean(per_example)
