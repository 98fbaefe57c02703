"""The autoencoder objective (stage ``vae``): train an AutoencoderKL on the frames of the data.

    loss = mean |x̂ − x|  (or mean (x̂ − x)², ``reconstruction='l2'``)  +  kl_weight · KL(q(z|x) ‖ N(0, I))

with x̂ the decoding of one posterior sample z ~ q(z|x) (the reparameterisation trick), the
reconstruction term averaged over pixels and the KL term averaged over latent elements. No
perceptual or adversarial term (the LDM recipe adds LPIPS and a patch GAN; plain shapes on flat
backgrounds do not need them). Every frame of a joint example — the clip's and the M images — is an
independent training image.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lavie_jax.training import conditioning, objectives

RECONSTRUCTIONS = ("l1", "l2")


def kl_to_standard_normal(mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """Elementwise KL(N(mean, exp(logvar)) ‖ N(0, 1))."""
    return 0.5 * (jnp.square(mean) + jnp.exp(logvar) - 1.0 - logvar)


def autoencoder_loss(
    vae, frames: jax.Array, keys: jax.Array, *, kl_weight: float, reconstruction: str = "l1"
) -> jax.Array:
    """``frames (B, N, H, W, 3)`` in [-1, 1] → the scalar loss; `keys` ``(B, 2)``, one per example."""
    if reconstruction not in RECONSTRUCTIONS:
        raise ValueError(f"reconstruction={reconstruction!r}; expected one of {RECONSTRUCTIONS}")
    b, n = frames.shape[:2]
    images = frames.reshape(b * n, *frames.shape[2:])  # (B·N, H, W, 3)
    posterior = vae.encode(images)  # over (B·N, h, w, c)
    eps = jax.vmap(lambda k: jax.random.normal(k, (n, *posterior.mean.shape[1:])))(
        objectives.stream(keys, objectives.LATENT)
    )  # (B, N, h, w, c)
    z = posterior.mean + jnp.exp(0.5 * posterior.logvar) * eps.reshape(posterior.mean.shape)
    error = vae.decode(z) - images
    rec = jnp.mean(jnp.abs(error)) if reconstruction == "l1" else jnp.mean(jnp.square(error))
    return rec + kl_weight * jnp.mean(kl_to_standard_normal(posterior.mean, posterior.logvar))


def batch_frames(batch: dict) -> jax.Array:
    """A batch's pixels, clip frames then images: ``(B, F+M, H, W, 3)`` in [-1, 1]."""
    video = conditioning.to_unit_range(batch["video"])
    images = conditioning.to_unit_range(batch["images"]) if "images" in batch else None
    return conditioning.join_frames(video, images)
