"""Joint image-video training: the images of a batch never reach the temporal parameters' gradients.

The last M frames are images (``num_image_frames=M``): they skip the temporal layers and are left out
of the clip-wide GroupNorm statistics, so the video frames' outputs — the only path from the loss to
the temporal parameters — cannot depend on them. Checked on the training objective itself, through a
tiny base UNet with every temporal layer non-zero.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, traverse_util

from lavie_jax.diffusion import schedule
from lavie_jax.models import unet3d
from lavie_jax.training import conditioning, objectives
from lavie_jax.training import state as train_state

F, M = 3, 2


def perturb_all(model: nnx.Module, seed: int) -> None:
    """Random non-zero values everywhere (the temporal output projections start at zero)."""
    state = nnx.state(model, nnx.Param)
    leaves, treedef = jax.tree.flatten(state)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    nnx.update(
        model,
        jax.tree.unflatten(treedef, [l + 0.05 * jax.random.normal(k, l.shape) for l, k in zip(leaves, keys)]),
    )


def temporal_and_spatial_grads(params, graphdef, latents, captions):
    is_temporal = train_state.trainable_predicate("temporal")
    sched = schedule.make_schedule(schedule.ScheduleConfig(beta_start=1e-4, beta_end=0.02))
    keys = objectives.example_keys(jnp.array([0, 1], jnp.uint32), jnp.int32(0), latents.shape[0])

    def loss(params):
        context = conditioning.frame_context(captions, F)
        return objectives.diffusion_loss(
            nnx.merge(graphdef, params),
            latents,
            context,
            keys,
            stage="base",
            schedule=sched,
            num_image_frames=M,
        )

    grads = jax.grad(loss)(params)
    temporal, spatial = train_state.split_trainable(grads, is_temporal)
    return traverse_util.flatten_dict(temporal), traverse_util.flatten_dict(spatial)


def test_temporal_gradients_ignore_the_image_frames():
    config = unet3d.UNet3DConfig(
        block_out_channels=(32, 32),
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        layers_per_block=1,
        num_attention_heads=1,
        norm_num_groups=8,
        cross_attention_dim=16,
    )
    model = unet3d.UNet3D(config, rngs=nnx.Rngs(0))
    perturb_all(model, 1)
    graphdef, params = nnx.split(model, nnx.Param)
    params = nnx.to_pure_dict(params)
    rng = np.random.default_rng(0)
    latents = rng.normal(size=(2, F + M, 8, 8, 4)).astype(np.float32)
    captions = rng.normal(size=(2, 1 + M, 5, 16)).astype(np.float32)
    other_latents, other_captions = latents.copy(), captions.copy()
    other_latents[:, F:] = rng.normal(size=other_latents[:, F:].shape)  # new images…
    other_captions[:, 1:] = rng.normal(size=other_captions[:, 1:].shape)  # …with new captions

    t1, s1 = temporal_and_spatial_grads(params, graphdef, latents, captions)
    t2, s2 = temporal_and_spatial_grads(params, graphdef, other_latents, other_captions)
    assert len(t1) > 0
    assert max(float(np.max(np.abs(t1[k]))) for k in t1) > 1e-4  # the temporal layers do learn
    assert max(float(np.max(np.abs(t1[k] - t2[k]))) for k in t1) <= 1e-6
    assert max(float(np.max(np.abs(s1[k] - s2[k]))) for k in s1) > 1e-4  # the spatial ones see the images
