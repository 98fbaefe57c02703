"""From a data batch to the UNet's inputs: latents of the joint clip and a text context per frame.

A joint example holds a video clip ``(F, H, W, 3)`` with one caption and M images ``(M, H, W, 3)``
with a caption each. Frames are concatenated video-first along F (the UNet is told
``num_image_frames=M``); every video frame gets the clip's caption, every image its own.
Caption dropout (classifier-free guidance training) replaces a caption by the empty prompt, on
token ids before the text encoder, or on precomputed embeddings.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lavie_jax.training import objectives


def to_unit_range(frames: jax.Array) -> jax.Array:
    """uint8 ``[0, 255]`` → float32 ``[-1, 1]``; float input is assumed to be in ``[-1, 1]`` already."""
    if frames.dtype == jnp.uint8:
        return frames.astype(jnp.float32) / 127.5 - 1.0
    return frames.astype(jnp.float32)


def join_frames(video: jax.Array, images: jax.Array | None) -> jax.Array:
    """``(B, F, ...)`` + ``(B, M, ...)`` → ``(B, F+M, ...)`` (images after the video frames)."""
    if images is None or images.shape[1] == 0:
        return video
    return jnp.concatenate([video, images], axis=1)


def sample_latents(mean: jax.Array, logvar: jax.Array, keys: jax.Array, scaling_factor: float) -> jax.Array:
    """Scaled samples of the frozen VAE's posterior ``N(mean, exp(logvar))``, ``(B, F, h, w, c)``,
    each example drawing from its own key."""
    eps = jax.vmap(lambda k: jax.random.normal(k, mean.shape[1:], mean.dtype))(
        objectives.stream(keys, objectives.LATENT)
    )
    return jax.lax.stop_gradient((mean + jnp.exp(0.5 * logvar) * eps) * scaling_factor)


def dropout_mask(keys: jax.Array, num_captions: int, rate: float) -> jax.Array:
    """``(B, N)`` booleans, True where a caption is replaced by the empty prompt."""
    draw = jax.vmap(lambda k: jax.random.uniform(k, (num_captions,)))(
        objectives.stream(keys, objectives.DROPOUT)
    )
    return draw < rate


def drop_captions(captions: jax.Array, empty: jax.Array, keys: jax.Array, rate: float) -> jax.Array:
    """``captions (B, N, ...)`` (token ids or embeddings) with some replaced by ``empty (...)``."""
    if rate <= 0:
        return captions
    mask = dropout_mask(keys, captions.shape[1], rate)  # (B, N)
    mask = mask.reshape(*mask.shape, *([1] * (captions.ndim - 2)))
    return jnp.where(mask, empty.astype(captions.dtype), captions)


def frame_context(captions: jax.Array, num_video_frames: int) -> jax.Array:
    """``captions (B, 1+M, L, D)`` (clip caption first) → the UNet's context.

    Video only: ``(B, L, D)``. Joint: ``(B, F+M, L, D)``, the clip caption repeated on its frames.
    """
    if captions.shape[1] == 1:
        return captions[:, 0]  # (B, L, D)
    b, _, length, dim = captions.shape
    video = jnp.broadcast_to(captions[:, :1], (b, num_video_frames, length, dim))  # (B, F, L, D)
    return jnp.concatenate([video, captions[:, 1:]], axis=1)  # (B, F+M, L, D)


def encode_text(text_encoder, ids: jax.Array, *, frozen: bool = True) -> jax.Array:
    """The text encoder on ``ids (B, N, 77)`` → ``(B, N, 77, D)``; no gradient flows into a frozen one."""
    b, n, length = ids.shape
    hidden = text_encoder(ids.reshape(b * n, length))  # (B·N, 77, D)
    hidden = hidden.reshape(b, n, length, hidden.shape[-1])
    return jax.lax.stop_gradient(hidden) if frozen else hidden
