"""One training step: loss and gradients of the trainable parameters → guarded update → EMA.

``train_step(state, frozen, batch) → (state, metrics)`` is a pure function; `train.py` wraps it in
``jax.jit`` with shardings and donates `state`. `frozen` holds the parameters of the frozen VAE and
text encoder (absent when the batch carries precomputed latents / embeddings, and the text encoder's
when it trains with the UNet) and the empty-prompt ids or embedding used by caption dropout.

A non-finite loss or gradient norm leaves parameters, optimizer state and EMA untouched, counts the
step in ``skipped`` and ``bad_steps`` (consecutive; reset by the next good step).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from lavie_jax.training import autoencoder, conditioning, objectives, optimizer, text_training
from lavie_jax.training import state as train_state


def init_state(
    params: dict, rng: jax.Array, *, tx: optax.GradientTransformation, is_trainable
) -> train_state.TrainState:
    trainable, _ = train_state.split_trainable(params, is_trainable)
    return train_state.TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=tx.init(trainable),
        ema_params=jax.tree.map(jnp.copy, trainable),
        rng=rng,
        bad_steps=jnp.zeros((), jnp.int32),
        skipped=jnp.zeros((), jnp.int32),
    )


def prepare_inputs(
    frozen: dict,
    batch: dict,
    keys: jax.Array,
    *,
    vae_graphdef,
    text_graphdef,
    scaling_factor: float,
    vae_frame_batch: int,
    caption_dropout: float,
    text_encoder: nnx.Module | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array | None]:
    """``(latents (B, F+M, h, w, c), context, pixels (B, F, H, W, 3) or None)`` from a batch.

    Batch keys: pixels ``video (B, F, H, W, 3)`` [+ ``images (B, M, H, W, 3)``] with
    ``caption_ids (B, 1+M, 77)``, or precomputed ``latents (B, F+M, h, w, c)`` with
    ``text_embeddings (B, 1+M, 77, D)`` (the VSR stage still needs ``video`` for its low-res input).
    `text_encoder`: a trained one (gradients flow into it) instead of the frozen ``frozen["text"]``.
    """
    pixels = conditioning.to_unit_range(batch["video"]) if "video" in batch else None  # (B, F, H, W, 3)
    if "latents" in batch:
        latents = batch["latents"].astype(jnp.float32)
        num_video = latents.shape[1] - (batch["text_embeddings"].shape[1] - 1)
    else:
        num_video = pixels.shape[1]
        images = conditioning.to_unit_range(batch["images"]) if "images" in batch else None
        frames = conditioning.join_frames(pixels, images)  # (B, F+M, H, W, 3)
        vae = nnx.merge(vae_graphdef, frozen["vae"])
        posterior = vae.encode_video(frames, frame_batch=vae_frame_batch)  # over (B, F+M, h, w, c)
        latents = conditioning.sample_latents(posterior.mean, posterior.logvar, keys, scaling_factor)
    if "text_embeddings" in batch:
        captions = conditioning.drop_captions(
            batch["text_embeddings"], frozen["empty"], keys, caption_dropout
        )
    else:
        ids = conditioning.drop_captions(batch["caption_ids"], frozen["empty"], keys, caption_dropout)
        if text_encoder is None:
            captions = conditioning.encode_text(nnx.merge(text_graphdef, frozen["text"]), ids)
        else:
            captions = conditioning.encode_text(text_encoder, ids, frozen=False)
    return latents, conditioning.frame_context(captions, num_video), pixels


def diffusion_loss_fn(*, model_graphdef, loss_options: dict, input_options: dict) -> Callable:
    """The base/interpolation/VSR stages' ``loss(params, frozen, batch, keys)``.

    `model_graphdef`: the UNet's, or a `text_training.UNetWithTextEncoder`'s;
    `loss_options`: keyword arguments of `objectives.diffusion_loss` (stage, schedule, …);
    `input_options`: those of `prepare_inputs` (graphdefs of the frozen encoders, caption dropout).
    The encoders run on the batch first (no gradient flows into the frozen ones)."""

    def loss(params, frozen, batch, keys):
        unet, text_encoder = text_training.parts(nnx.merge(model_graphdef, params))
        latents, context, pixels = prepare_inputs(
            frozen, batch, keys, text_encoder=text_encoder, **input_options
        )
        return objectives.diffusion_loss(unet, latents, context, keys, pixels=pixels, **loss_options)

    return loss


def autoencoder_loss_fn(*, vae_graphdef, kl_weight: float, reconstruction: str) -> Callable:
    """The ``vae`` stage's ``loss(params, frozen, batch, keys)`` (`autoencoder.autoencoder_loss`)."""

    def loss(params, frozen, batch, keys):
        vae = nnx.merge(vae_graphdef, params)
        frames = autoencoder.batch_frames(batch)
        return autoencoder.autoencoder_loss(
            vae, frames, keys, kl_weight=kl_weight, reconstruction=reconstruction
        )

    return loss


def make_train_step(
    *,
    loss_fn: Callable,
    tx: optax.GradientTransformation,
    is_trainable,
    ema_decay: float,
) -> Callable:
    """``train_step(state, frozen, batch) → (state, metrics)`` minimising
    ``loss_fn(params, frozen, batch, keys)`` (`diffusion_loss_fn`, `autoencoder_loss_fn`) over the
    trainable parameters."""

    def train_step(state: train_state.TrainState, frozen: dict, batch: dict):
        batch_size = jax.tree.leaves(batch)[0].shape[0]
        keys = objectives.example_keys(state.rng, state.step, batch_size)  # (B, 2)
        trainable, fixed = train_state.split_trainable(state.params, is_trainable)

        def loss_of(trainable):
            return loss_fn(train_state.merge_params(trainable, fixed), frozen, batch, keys)

        loss, grads = jax.value_and_grad(loss_of)(trainable)
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)

        updates, opt_state = tx.update(grads, state.opt_state, trainable)
        new_trainable = optax.apply_updates(trainable, updates)
        # With gradient accumulation the parameters move once every k micro-batches; so does the EMA.
        decay = jnp.where(optimizer.applied_update(opt_state), ema_decay, 1.0)
        ema = train_state.ema_update(state.ema_params, new_trainable, decay)

        def keep_if_finite(new, old):
            return jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)

        new_state = state.replace(
            step=state.step + 1,
            params=train_state.merge_params(keep_if_finite(new_trainable, trainable), fixed),
            opt_state=keep_if_finite(opt_state, state.opt_state),
            ema_params=keep_if_finite(ema, state.ema_params),
            bad_steps=jnp.where(finite, 0, state.bad_steps + 1),
            skipped=state.skipped + (~finite).astype(jnp.int32),
        )
        metrics = {"loss": loss, "grad_norm": grad_norm, "finite": finite}
        return new_state, metrics

    return train_step
