"""Training checkpoint → what the sampler loads: the EMA weights as a model folder (or a VAE component).

    export_model(workdir, out)               the latest checkpoint of the run in `workdir`
    export_model(workdir, out, step=2000)    a given one

UNet stages write a complete model folder (``model_folder.write``): the EMA UNet (and the EMA text
encoder of a ``train_text_encoder`` run), the frozen VAE, text encoder and tokenizer the run trained
with (its ``encoders_from``/``init_from`` folder, or the random ones a tiny run builds from its seed),
and ``scheduler/config.json`` = the stage's sampling conventions at the run's frame count and size.
Stage ``vae`` writes a ``vae/`` component folder whose ``scaling_factor`` is measured (SD's recipe:
1 / std of the latent means over training frames), so the
diffusion stages trained on it see unit-variance latents.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

import jax
import ml_collections
import numpy as np
from flax import nnx

from lavie_jax.training import checkpoint, text_training
from lavie_jax.training import state as train_state


def saved_run(workdir: str | os.PathLike, step: int | None = None) -> tuple[ml_collections.ConfigDict, int]:
    """The config and the step of a run's checkpoint (the latest one by default)."""
    ckpt = checkpoint.Checkpointer(workdir, max_to_keep=1_000_000)  # opening never deletes anything
    try:
        steps = ckpt.manager.all_steps()
        if not steps:
            raise ValueError(
                f"workdir {str(workdir)!r} holds no checkpoint (checkpoints/ is empty or absent)"
            )
        step = max(steps) if step is None else step
        if step not in steps:
            raise ValueError(f"workdir {str(workdir)!r} has no checkpoint {step}; it has {sorted(steps)}")
        return ml_collections.ConfigDict(ckpt.saved_config(step)), step
    finally:
        ckpt.close()


def ema_model(
    workdir: str | os.PathLike, config: ml_collections.ConfigDict, step: int, text_config=None
) -> nnx.Module:
    """The trained model with its EMA weights (frozen parameters as trained), on one device.
    `text_config`: the text encoder's, for a run with ``train_text_encoder``."""
    from lavie_jax import train

    model = nnx.eval_shape(lambda: train.build_model(config, rngs=nnx.Rngs(0), text_config=text_config))
    graphdef, abstract = nnx.split(model, nnx.Param)
    abstract = nnx.to_pure_dict(abstract)
    is_trainable = train_state.trainable_predicate(config.optim.trainable)
    trainable, _ = train_state.split_trainable(abstract, is_trainable)
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])

    def target(tree):
        return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device), tree)

    ckpt = checkpoint.Checkpointer(workdir, max_to_keep=1_000_000)
    try:
        saved = ckpt.restore_subtree(step, {"params": target(abstract), "ema_params": target(trainable)})
    finally:
        ckpt.close()
    _, frozen = train_state.split_trainable(saved["params"], is_trainable)
    params = train_state.merge_params(saved["ema_params"], frozen)
    return nnx.merge(graphdef, jax.tree.map(np.asarray, params))


def measure_scaling_factor(vae, frames: np.ndarray) -> float:
    """``1 / std`` of the posterior means of ``frames (N, H, W, 3)`` in [-1, 1]."""
    means = jax.jit(lambda x: vae.encode(x).mean)(frames)
    return float(1.0 / np.std(np.asarray(means)))


def training_frames(config: ml_collections.ConfigDict, workdir: pathlib.Path, batches: int) -> np.ndarray:
    """``(N, H, W, 3)`` frames in [-1, 1] from the first `batches` batches of the run's data."""
    from lavie_jax import train
    from lavie_jax.training import autoencoder

    data = train.build_data(config, config.batch_size, workdir, None)
    frames = [np.asarray(autoencoder.batch_frames(next(data))) for _ in range(batches)]
    return np.concatenate([f.reshape(-1, *f.shape[2:]) for f in frames])


def scheduler_config(config: ml_collections.ConfigDict, **overrides) -> dict:
    """The stage's sampling conventions at the size the run trained on (`overrides`: other
    `SamplingDefaults` fields, e.g. ``steps``)."""
    from lavie_jax.pipelines import stage_defaults

    make = {
        "base": stage_defaults.base_stage,
        "interpolation": stage_defaults.interpolation_stage,
        "vsr": stage_defaults.vsr_stage,
    }[config.stage]
    d, defaults = config.data, make()
    # VSR trains on chunks of a clip; the video it makes keeps its input's frame count (the default's).
    frames = defaults.num_frames if config.stage == "vsr" else d.num_frames
    # The noise schedule the run trained with (its betas and prediction type), other fields the stage's.
    trained = {k: v for k, v in config.diffusion.to_dict().items() if k in defaults.schedule}
    fields = dict(
        num_frames=frames, height=d.height, width=d.width, schedule={**defaults.schedule, **trained}
    )
    return stage_defaults.SamplingDefaults.from_dict({**defaults.to_dict(), **fields, **overrides}).to_dict()


def export_model(
    workdir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    step: int | None = None,
    dtype: str = "float32",
    scaling_batches: int = 8,
    sampling: dict | None = None,
) -> pathlib.Path:
    """Write the run's EMA weights to `out` (module docstring); returns `out`. An existing `out` is
    refused (nothing already saved is overwritten). `sampling` overrides fields of the folder's
    sampling defaults (``{"steps": 25}``)."""
    from lavie_jax import train
    from lavie_jax.models import io
    from lavie_jax.pipelines import model_folder

    workdir, out = pathlib.Path(workdir), pathlib.Path(out)
    if out.exists():
        raise ValueError(f"output folder {str(out)!r} already exists; choose a new path")
    config, step = saved_run(workdir, step)
    if config.stage == "vae":
        model = ema_model(workdir, config, step)
        scale = measure_scaling_factor(model, training_frames(config, workdir, scaling_batches))
        vae_config = dataclasses.replace(model.config, scaling_factor=scale)
        io.save_flat(out, _flat(model), vae_config.to_dict(), kind="vae", dtype=dtype)
        return out
    encoders = train.build_encoders(config)
    model = ema_model(workdir, config, step, text_config=encoders.text_encoder.config)
    unet, text_encoder = text_training.parts(model)
    text_encoder = text_encoder or encoders.text_encoder  # the trained one, or the frozen one
    return model_folder.write(
        out,
        stage=config.stage,
        components={
            "unet": (_flat(unet), unet.config.to_dict()),
            "vae": (_flat(encoders.vae), encoders.vae.config.to_dict()),
            "text_encoder": (_flat(text_encoder), text_encoder.config.to_dict()),
        },
        tokenizer=encoders.tokenizer,
        scheduler_config=scheduler_config(config, **(sampling or {})),
        dtype=dtype,
        trained_from={"workdir": str(workdir.absolute()), "step": step},
    )


def _flat(module: nnx.Module) -> dict:
    from lavie_jax.convert import state

    return state.flat_params(module)
