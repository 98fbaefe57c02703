"""Train any LaVie stage: ``python -m lavie_jax.train --config configs/base.py --workdir DIR``.

    python -m lavie_jax.train --config configs/tiny_base.py --workdir runs/tiny
    python -m lavie_jax.train --config configs/base.py --workdir runs/base \\
        --config.init_from=converted/lavie_base --config.data.path=DATA --config.mesh.fsdp=8
    python -m lavie_jax.train ... --config.fresh=True      # the workdir holds another run: start over

One loop for the three stages (they differ by config: the UNet options and the objective), on one
CPU, a GPU, a TPU slice or many hosts: only the mesh changes. The workdir receives
``checkpoints/`` (orbax: train state, data-iterator state, config), ``metrics.jsonl``,
``tensorboard/`` and ``samples/``. A run resumes from its latest checkpoint automatically; SIGTERM
or Ctrl-C saves one before exiting. Only this file reads configs; everything it calls takes plain
arguments.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm
from absl import app, flags, logging
from flax import nnx
from ml_collections import config_flags

from lavie_jax import compilation_cache, heap, parallel
from lavie_jax.models import io as model_io
from lavie_jax.training import (
    autoencoder,
    checkpoint,
    metrics,
    objectives,
    optimizer,
    remat,
    signals,
    step,
    text_training,
)
from lavie_jax.training import preview as preview_lib
from lavie_jax.training import state as train_state

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
STAGES = (*objectives.STAGES, "vae")  # the three UNet stages, and the autoencoder they all use
# Keys that fix the shapes of the train state and of the data: a checkpoint with other values
# belongs to another run, which we refuse to resume (``--config.fresh=True`` sets it aside).
RUN_IDENTITY = (
    "stage",
    "model",
    "train_text_encoder",
    "optim.trainable",
    "optim.accumulate_steps",
    "data.num_frames",
    "data.num_images",
    "data.height",
    "data.width",
    "data.workers",  # the data-iterator state saved with a checkpoint is per worker
)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> train_state.TrainState:
    """Train until ``config.num_steps`` micro-batches (or a stop signal); returns the final state."""
    # Before anything touches a JAX backend (validate_config counts devices): multi-host start-up.
    parallel.initialize_distributed(config.distributed)
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    compilation_cache.enable()
    validate_config(config)

    # ------------------------------------------------------------------------------------------ mesh
    devices = jax.devices() if config.mesh.num_devices == -1 else jax.devices()[: config.mesh.num_devices]
    mesh = parallel.make_mesh((config.mesh.data, config.mesh.fsdp, config.mesh.tensor), devices)
    parallel.check_batch_size(config.batch_size, mesh)
    logging.info("mesh %s over %d devices, %d host(s)", dict(mesh.shape), mesh.size, jax.process_count())

    # ----------------------------------------------------------- model and optimizer via eval_shape
    encoders = build_encoders(config)
    text_config = encoders.text_encoder.config if encoders.text_encoder is not None else None
    abstract_model = nnx.eval_shape(lambda: build_model(config, rngs=nnx.Rngs(0), text_config=text_config))
    model_graphdef, abstract_params = nnx.split(abstract_model, nnx.Param)
    abstract_params = nnx.to_pure_dict(abstract_params)
    is_trainable = train_state.trainable_predicate(config.optim.trainable)
    train_state.check_trainable(abstract_params, is_trainable, config.optim.trainable)
    lr_schedule = optimizer.learning_rate_schedule(
        config.optim.learning_rate,
        warmup_steps=config.optim.warmup_steps,
        schedule=config.optim.schedule,
        total_steps=config.num_steps // config.optim.accumulate_steps,
    )
    tx = optimizer.make_optimizer(
        lr_schedule,
        weight_decay=config.optim.weight_decay,
        b1=config.optim.b1,
        b2=config.optim.b2,
        eps=config.optim.eps,
        clip_norm=config.optim.clip_norm,
        accumulate_steps=config.optim.accumulate_steps,
    )
    init_state = functools.partial(step.init_state, tx=tx, is_trainable=is_trainable)
    abstract_state = jax.eval_shape(init_state, abstract_params, jax.random.PRNGKey(0))
    data_iter = build_data(
        config,
        parallel.host_batch_size(config.batch_size),
        workdir,
        encoders.input_options.get("scaling_factor"),
    )

    # ----------------------------------------------------------------------------------------- shard
    state_shardings = train_state_shardings(abstract_state, mesh)
    encoder_shardings = parallel.param_shardings(encoders.params, mesh)
    encoder_params = jax.device_put(encoders.params, encoder_shardings)

    # ------------------------------------------------------------------------------------------ step
    train_step = jax.jit(
        step.make_train_step(
            loss_fn=make_loss_fn(config, model_graphdef, encoders),
            tx=tx,
            is_trainable=is_trainable,
            ema_decay=config.ema_decay,
        ),
        in_shardings=(state_shardings, encoder_shardings, parallel.batch_sharding(mesh)),
        out_shardings=(state_shardings, parallel.replicated(mesh)),
        donate_argnums=0,
    )

    # --------------------------------------------------------------------------------------- restore
    ckpt = checkpoint.Checkpointer(workdir, max_to_keep=config.keep_checkpoints)
    config_dict = config.to_dict()
    latest = ckpt.latest_step()
    if latest is not None:
        diffs = checkpoint.differences(ckpt.saved_config(latest), config_dict, RUN_IDENTITY)
        if diffs and not config.fresh:
            raise ValueError(
                f"workdir {str(workdir)!r} holds a checkpoint (step {latest}) of another run:\n  "
                + "\n  ".join(diffs)
                + "\npass --config.fresh=True to set it aside and start over, or use another --workdir"
            )
        if config.fresh:
            logging.warning("fresh start: previous checkpoints moved to %s", ckpt.set_aside())
            latest = None
    if latest is not None:
        target = jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract_state, state_shardings
        )
        state, data_iter = ckpt.restore(latest, target, data_iter)
        logging.info("resumed from step %d", latest)
    else:
        params = initial_params(config, state_shardings.params, encoders)
        rng = jax.random.PRNGKey(config.seed)
        state = jax.jit(init_state, out_shardings=state_shardings, donate_argnums=0)(params, rng)

    # ------------------------------------------------------------------------------------------ loop
    writer = metrics.MetricsWriter(workdir)
    preview = make_preview(config, model_graphdef, is_trainable, encoders, workdir / "samples")
    start = int(jax.device_get(state.step))
    progress = tqdm.tqdm(
        initial=start, total=config.num_steps, disable=jax.process_index() != 0, dynamic_ncols=True
    )
    window, previous, compiled = Window(), None, None
    with signals.StopRequest() as stop:
        for done in range(start + 1, config.num_steps + 1):
            t_data = time.perf_counter()
            host_batch = next(data_iter)
            window.data_time += time.perf_counter() - t_data
            batch = parallel.global_batch(model_inputs(host_batch, encoders.tokenizer), mesh)
            if compiled is None:  # ahead of time, to report the step's memory before running it
                compiled = train_step.lower(state, encoder_params, batch).compile()
                heap.release_free_memory()  # the compiler's freed temporaries
                write_memory_report(compiled, workdir)
            state, step_metrics = compiled(state, encoder_params, batch)
            step_metrics["bad_steps"] = state.bad_steps + 0  # a copy: `state` is donated next step
            window.logs.append(step_metrics)
            progress.update(1)

            # One step behind: this waits for the previous step only; the current one keeps running.
            if previous is not None and int(previous["bad_steps"]) >= config.max_bad_steps:
                ckpt.wait()
                raise RuntimeError(
                    f"{int(previous['bad_steps'])} non-finite steps in a row (max_bad_steps="
                    f"{config.max_bad_steps}) at step {done - 1}: stopped. Parameters are never updated "
                    f"by a non-finite step; the last checkpoint (step {ckpt.latest_step()}) is intact."
                )
            previous = step_metrics

            if done % config.log_every == 0 or done == config.num_steps:
                scalars = window.summary(config.batch_size)
                scalars["learning_rate"] = float(lr_schedule(done // config.optim.accumulate_steps))
                scalars["skipped_nonfinite_steps"] = int(jax.device_get(state.skipped))
                scalars.update(data_counters(workdir))
                writer.write(done, scalars)
                progress.set_postfix(loss=f"{scalars['loss']:.4f}", refresh=False)
                window = Window()
            if done % config.checkpoint_every == 0 or done == config.num_steps or stop:
                ckpt.save(done, state, data_iter, config_dict)
            if preview is not None and (done % config.sample_every == 0 or done == config.num_steps):
                preview(state, done)
            if stop:
                logging.warning("%s received: saved step %d, exiting", stop.signal_name, done)
                break
    ckpt.wait()
    ckpt.close()
    writer.close()
    progress.close()
    return state


# ----------------------------------------------------------------------------------------------------
# What the loop calls. These read the config; the modules under them take plain arguments.


@dataclasses.dataclass
class Window:
    """Per-step metrics and timings since the last log line."""

    logs: list = dataclasses.field(default_factory=list)
    data_time: float = 0.0
    t0: float = dataclasses.field(default_factory=time.perf_counter)

    def summary(self, batch_size: int) -> dict[str, float]:
        logs = jax.device_get(self.logs)
        finite = [m for m in logs if m["finite"]]
        elapsed = time.perf_counter() - self.t0
        return {
            "loss": float(np.mean([m["loss"] for m in finite])) if finite else float("nan"),
            "grad_norm": float(np.mean([m["grad_norm"] for m in finite])) if finite else float("nan"),
            "steps_per_second": len(logs) / elapsed,
            "examples_per_second": len(logs) * batch_size / elapsed,
            "data_wait_fraction": self.data_time / elapsed,
        }


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Values that would otherwise fail late (after compiling) or silently."""

    def check(name: str, ok: bool, expected: str) -> None:
        if not ok:
            value = functools.reduce(lambda c, k: c[k], name.split("."), config)
            raise ValueError(f"config.{name}={value!r}; expected {expected}")

    check("stage", config.stage in STAGES, f"one of {STAGES}")
    check(
        "autoencoder.reconstruction",
        config.autoencoder.reconstruction in autoencoder.RECONSTRUCTIONS,
        f"one of {autoencoder.RECONSTRUCTIONS}",
    )
    check("remat", not (config.remat and config.stage == "vae"), "False for stage='vae' (UNet blocks only)")
    check("compute_dtype", config.compute_dtype in COMPUTE_DTYPES, f"one of {sorted(COMPUTE_DTYPES)}")
    schedule_config(config)  # raises on an unknown beta schedule or prediction type
    check("caption_dropout", 0.0 <= config.caption_dropout <= 1.0, "a probability in [0, 1]")
    check("ema_decay", 0.0 <= config.ema_decay < 1.0, "a decay in [0, 1)")
    for name in ("num_steps", "log_every", "checkpoint_every", "max_bad_steps", "batch_size"):
        check(name, config[name] >= 1, "≥ 1")
    check("sample_every", config.sample_every >= 0, "≥ 0 (0 = never)")
    check(
        "mesh.num_devices",
        config.mesh.num_devices == -1 or 1 <= config.mesh.num_devices <= jax.device_count(),
        f"-1 (all) or 1…{jax.device_count()} (the devices available)",
    )
    check(
        "data.num_images",
        config.data.num_images == 0 or config.stage in ("base", "vae"),
        "0 (joint image-video batches are for the base and vae stages)",
    )
    if config.stage == "interpolation":
        objectives.keyframe_indices(config.data.num_frames)  # 4k+1 frames, keyframes every 4th
    check(
        "train_text_encoder",
        not config.train_text_encoder or (config.stage != "vae" and not config.data.precomputed),
        "False for stage='vae' and for precomputed text embeddings (the encoder must run in the step)",
    )


def build_model(config: ml_collections.ConfigDict, *, rngs: nnx.Rngs, text_config=None) -> nnx.Module:
    """The trained model: the stage's UNet3D (``config.model``), the AutoencoderKL (``config.vae``) for
    stage 'vae', or with ``train_text_encoder`` the UNet and a text encoder of `text_config` (the
    frozen encoders' one: `build_encoders`) in a `text_training.UNetWithTextEncoder`."""
    from lavie_jax.models import clip_text, vae

    dtype = COMPUTE_DTYPES[config.compute_dtype]
    if config.stage == "vae":
        return vae.AutoencoderKL(vae.VAEConfig.from_dict(config.vae.to_dict()), rngs=rngs, dtype=dtype)
    unet = build_unet(config, rngs=rngs)
    if not config.train_text_encoder:
        return unet
    if text_config is None:
        raise ValueError("train_text_encoder=True: build_model needs the text encoder's config")
    text_encoder = clip_text.CLIPTextModel(text_config, rngs=rngs, dtype=dtype)
    return text_training.UNetWithTextEncoder(unet, text_encoder)


def build_unet(config: ml_collections.ConfigDict, *, rngs: nnx.Rngs) -> nnx.Module:
    """The stage's UNet3D (``config.model``), its blocks rematerialised with ``config.remat``."""
    from lavie_jax.models import unet3d

    unet_config = unet3d.UNet3DConfig.from_dict(config.model.to_dict())
    unet = unet3d.UNet3D(unet_config, rngs=rngs, dtype=COMPUTE_DTYPES[config.compute_dtype])
    if config.remat:
        remat.rematerialize_blocks(unet)
    return unet


def train_state_shardings(abstract_state: train_state.TrainState, mesh):
    """Parameters, moments and EMA by the logical rules; counters and the RNG key replicated."""
    rep = parallel.replicated(mesh)
    return abstract_state.replace(
        step=rep,
        params=parallel.param_shardings(abstract_state.params, mesh),
        opt_state=parallel.param_shardings(abstract_state.opt_state, mesh),
        ema_params=parallel.param_shardings(abstract_state.ema_params, mesh),
        rng=rep,
        bad_steps=rep,
        skipped=rep,
    )


def initial_params(config: ml_collections.ConfigDict, shardings, encoders: Encoders) -> dict:
    """The trained model's starting weights, laid out with `shardings`: ``init_from``'s unet (or vae),
    or a random init compiled with those output shardings (no device ever holds the whole model);
    with ``train_text_encoder`` also the text encoder, starting as `encoders`' one."""
    joint = config.train_text_encoder
    own = shardings["unet"] if joint else shardings
    build = build_unet if config.stage != "vae" else build_model
    if config.init_from:
        module = model_io.load_component(
            pathlib.Path(config.init_from) / trained_component(config),
            kind=trained_component(config),
            build=lambda _: build(config, rngs=nnx.Rngs(0)),
        )
        params = jax.device_put(nnx.to_pure_dict(nnx.state(module, nnx.Param)), own)
    else:

        def init():
            return nnx.to_pure_dict(nnx.state(build(config, rngs=nnx.Rngs(config.seed)), nnx.Param))

        params = jax.jit(init, out_shardings=own)()
    if not joint:
        return params
    text = nnx.to_pure_dict(nnx.state(encoders.text_encoder, nnx.Param))
    return {"unet": params, "text_encoder": jax.device_put(text, shardings["text_encoder"])}


def schedule_config(config: ml_collections.ConfigDict):
    from lavie_jax.diffusion import schedule

    return schedule.ScheduleConfig.from_dict(config.diffusion.to_dict())  # the noise-schedule fields


def loss_options(config: ml_collections.ConfigDict) -> dict:
    """Keyword arguments of `objectives.diffusion_loss` for this stage."""
    from lavie_jax.diffusion import schedule

    d = config.diffusion
    options = dict(
        stage=config.stage,
        schedule=schedule.make_schedule(schedule_config(config)),
        num_image_frames=config.data.num_images,
        min_snr_gamma=d.min_snr_gamma or None,
        noise_offset=d.noise_offset,
    )
    if config.stage == "vsr":
        v = config.vsr
        low_res = schedule.ScheduleConfig(
            num_train_timesteps=d.num_train_timesteps,
            beta_schedule=v.low_res_beta_schedule,
            beta_start=v.low_res_beta_start,
            beta_end=v.low_res_beta_end,
        )
        options.update(
            low_res_schedule=schedule.make_schedule(low_res),
            max_noise_level=v.max_noise_level,
            low_res_factor=v.downsample,
        )
    return options


def trained_component(config: ml_collections.ConfigDict) -> str:
    """The model-folder component this stage trains: 'vae' or 'unet'."""
    return "vae" if config.stage == "vae" else "unet"


def make_loss_fn(config: ml_collections.ConfigDict, graphdef, encoders: Encoders):
    if config.stage == "vae":
        return step.autoencoder_loss_fn(
            vae_graphdef=graphdef,
            kl_weight=config.autoencoder.kl_weight,
            reconstruction=config.autoencoder.reconstruction,
        )
    return step.diffusion_loss_fn(
        model_graphdef=graphdef, loss_options=loss_options(config), input_options=encoders.input_options
    )


@dataclasses.dataclass
class Encoders:
    """What the step needs besides the UNet: frozen encoder parameters (a jit argument, sharded) and
    the static options of `step.prepare_inputs`; the modules themselves serve previews."""

    params: dict  # {'vae': …, 'text': …} when they run in the step (no 'text' when it trains), 'empty'
    # (ids or embedding)
    input_options: dict
    vae: nnx.Module | None = None
    text_encoder: nnx.Module | None = None
    tokenizer: object | None = None


def build_encoders(config: ml_collections.ConfigDict) -> Encoders:
    """Frozen VAE and text encoder, and the tokenizer: each from the ``encoders_from`` (or
    ``init_from``) folder when it holds that component, else a random one shaped by ``config.vae`` /
    ``config.text_encoder`` (seeded by ``config.seed``) and the shipped CLIP tokenizer. Also the empty
    prompt for caption dropout. Stage 'vae' needs none of them."""
    from lavie_jax.models import clip_text, tokenizer, vae

    if config.stage == "vae":
        return Encoders(params={}, input_options={})  # it trains on pixels alone
    dtype = COMPUTE_DTYPES[config.compute_dtype]
    source = config.encoders_from or config.init_from
    folder = pathlib.Path(source) if source else None
    if folder is not None and not folder.is_dir():  # not a silent fallback to random encoders
        field = "encoders_from" if config.encoders_from else "init_from"
        raise ValueError(f"config.{field}={source!r}: no such folder; expected a model folder")

    def component(name: str, kind: str, build, fields: ml_collections.ConfigDict, seed: int) -> nnx.Module:
        if folder is not None and (folder / name).is_dir():
            return model_io.load_component(folder / name, kind=kind, build=build)
        if not fields:
            raise ValueError(
                f"config.{name}: empty, and no {name}/ folder in encoders_from/init_from={source!r}; "
                f"expected a folder holding {name}/ or the fields of a random {name}"
            )
        return build(fields.to_dict(), seed)

    vae_model = component(
        "vae",
        "vae",
        lambda c, seed=0: vae.AutoencoderKL(vae.VAEConfig.from_dict(c), rngs=nnx.Rngs(seed), dtype=dtype),
        config.vae,
        config.seed + 1,
    )
    text_model = component(
        "text_encoder",
        "text_encoder",
        lambda c, seed=0: clip_text.CLIPTextModel(
            clip_text.CLIPTextConfig.from_dict(c), rngs=nnx.Rngs(seed), dtype=dtype
        ),
        config.text_encoder,
        config.seed + 2,
    )
    has_tokenizer = folder is not None and (folder / "tokenizer").is_dir()
    tok = (
        tokenizer.Tokenizer.from_folder(folder / "tokenizer")
        if has_tokenizer
        else tokenizer.default_tokenizer()
    )
    empty_ids = jnp.asarray(tok([""])[0])  # (77,)
    vae_graphdef, vae_params = nnx.split(vae_model, nnx.Param)
    text_graphdef, text_params = nnx.split(text_model, nnx.Param)
    if config.data.precomputed:
        params = {"empty": text_model(empty_ids[None])[0]}  # (77, D): the embedding of ''
    else:
        params = {"vae": nnx.to_pure_dict(vae_params), "empty": empty_ids}
        if not config.train_text_encoder:  # else it is a trained parameter (`initial_params`)
            params["text"] = nnx.to_pure_dict(text_params)
    return Encoders(
        params=params,
        input_options=dict(
            vae_graphdef=vae_graphdef,
            text_graphdef=text_graphdef,
            scaling_factor=vae_model.config.scaling_factor,
            vae_frame_batch=config.vae_frame_batch,
            caption_dropout=config.caption_dropout,
        ),
        vae=vae_model,
        text_encoder=text_model,
        tokenizer=tok,
    )


def build_data(config, host_batch_size: int, workdir: pathlib.Path, scaling_factor):
    """This host's batch iterator. ``source='synthetic'`` writes the synthetic set first when
    ``data.path`` holds none (`ensure_synthetic`), sized by ``data.synthetic``."""
    from lavie_jax.data import pipeline

    d = config.data
    path = d.path
    if d.source == "synthetic" and not d.precomputed:
        path = ensure_synthetic(pathlib.Path(path) if path else None, workdir, config)
    return pipeline.make_train_iterator(
        batch_size=host_batch_size,
        num_frames=d.num_frames,
        height=d.height,
        width=d.width,
        num_images=d.num_images,
        path=str(path),
        source=d.source,
        image_path=d.image_path,
        precomputed=d.precomputed,
        latent_scaling_factor=scaling_factor if d.precomputed else None,
        stage="base" if config.stage == "vae" else config.stage,  # the vae trains on base clips' frames
        frame_stride=d.frame_stride,
        seed=d.shuffle_seed,
        workers=d.workers,
        workdir=workdir,
    )


def ensure_synthetic(folder: pathlib.Path | None, workdir: pathlib.Path, config) -> pathlib.Path:
    """The synthetic captioned set in `folder` (default ``WORKDIR/synthetic_<F>x<H>x<W>``), written
    once if absent (by process 0; the others wait)."""
    from lavie_jax.data import synthetic

    s, d = config.data.synthetic, config.data
    frames = max(s.frames, (d.num_frames - 1) * d.frame_stride + 1)
    height, width = s.height or d.height, s.width or d.width
    folder = folder or workdir / f"synthetic_{frames}x{height}x{width}"
    if jax.process_index() == 0 and not (folder / "videos.csv").is_file():
        logging.info("writing %d synthetic clips and %d images to %s", s.videos, s.images, folder)
        synthetic.write_dataset(
            folder,
            videos=s.videos,
            images=s.images,
            num_frames=frames,
            height=height,
            width=width,
            seed=s.seed,
        )
    if jax.process_count() > 1:
        parallel.barrier("synthetic data written", timeout_s=3600)  # writing may take minutes
    return folder


def model_inputs(host_batch: dict, tokenizer) -> dict:
    """The arrays the step consumes; captions (strings) become token ids ``(B, 1+M, 77)`` here."""
    batch = {
        k: np.asarray(host_batch[k])
        for k in ("video", "images", "latents", "text_embeddings")
        if k in host_batch
    }
    if "text_embeddings" not in batch and tokenizer is not None:
        captions = np.asarray(host_batch["captions"])  # (B, 1+M) strings
        ids = tokenizer([str(c) for c in captions.reshape(-1)])  # (B·(1+M), 77)
        batch["caption_ids"] = ids.reshape(*captions.shape, -1)
    return batch


def write_memory_report(compiled, workdir: pathlib.Path) -> None:
    """XLA's memory plan of the compiled step (bytes per device: arguments, outputs, temporaries —
    the activations kept for the backward pass live in ``temp``) → ``WORKDIR/step_memory.json``."""
    stats = compiled.memory_analysis()
    if stats is None or jax.process_index() != 0:
        return
    report = {
        k: int(getattr(stats, f"{k}_size_in_bytes"))
        for k in ("argument", "output", "temp", "alias", "generated_code")
        if hasattr(stats, f"{k}_size_in_bytes")
    }
    (workdir / "step_memory.json").write_text(json.dumps(report, indent=2) + "\n")
    logging.info(
        "compiled step memory per device: %s", {k: f"{v / 2**20:.1f} MiB" for k, v in report.items()}
    )


def data_counters(workdir: pathlib.Path) -> dict[str, int]:
    """Skipped examples so far, per reason (``skipped_<reason>``) and in total (the data pipeline's
    ``skipped.jsonl``, shared by its worker processes)."""
    from lavie_jax.data import skipping

    counts = skipping.SkipLog(workdir).counts()
    return {"skipped_examples": sum(counts.values()), **{f"skipped_{k}": v for k, v in counts.items()}}


def make_preview(config, model_graphdef, is_trainable, encoders: Encoders, folder: pathlib.Path):
    from lavie_jax.diffusion import samplers

    """``preview(state, step)`` writing a DDIM sample of ``config.sample.prompt`` from the EMA weights,
    or None (``sample_every=0``, or a stage whose sampling needs more than a prompt)."""
    if not config.sample_every:
        return None
    if config.stage != "base":
        logging.warning("previews are made for the base stage only; stage=%r gets none", config.stage)
        return None
    ids = jnp.asarray(encoders.tokenizer([config.sample.prompt, ""]))  # (2, 77)
    frozen_hidden = None if config.train_text_encoder else encoders.text_encoder(ids)  # (2, 77, D)
    pixels = jax.ShapeDtypeStruct((1, config.data.height, config.data.width, 3), jnp.float32)
    probe = jax.eval_shape(lambda x: encoders.vae.encode(x).mean, pixels)  # (1, h, w, c)
    latent_shape = (1, config.data.num_frames, *probe.shape[1:])  # (1, F, h, w, c)
    noise = jax.random.normal(jax.random.PRNGKey(config.seed), latent_shape)
    plan = samplers.make_plan("ddim", schedule_config(config), config.sample.steps, spacing="leading")

    @jax.jit
    def sample(params, hidden, noise):
        unet, text_encoder = text_training.parts(nnx.merge(model_graphdef, params))
        if text_encoder is not None:
            hidden = text_encoder(ids)  # (2, 77, D)
        return preview_lib.ddim_sample(
            unet,
            hidden[:1],
            hidden[1:],
            noise,
            plan=plan,
            guidance=config.sample.guidance,
        )

    def preview(state: train_state.TrainState, step_number: int) -> None:
        params = train_state.ema_params_full(state, is_trainable)
        latents = sample(params, frozen_hidden, noise)  # (1, F, h, w, c)
        latents = jnp.asarray(jax.device_get(latents)[0]) / encoders.input_options["scaling_factor"]
        frames = preview_lib.to_uint8(encoders.vae.decode(latents))  # (F, H, W, 3)
        if jax.process_index() == 0:
            preview_lib.write(folder, step_number, frames)

    return preview


FLAGS = flags.FLAGS
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "a configs/*.py file (get_config())", lock_config=True
)
flags.DEFINE_string("workdir", None, "folder for checkpoints, logs and samples (created if missing)")


class _QuietOrbax(logging.logging.Filter):
    """Orbax logs every save at INFO (a dozen lines); keep its warnings and errors only."""

    def filter(self, record) -> bool:
        return record.levelno >= logging.logging.WARNING or "orbax" not in record.pathname


def main(argv: list[str]) -> int:
    logging.get_absl_handler().addFilter(_QuietOrbax())
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _CONFIG.value is None or not FLAGS.workdir:
        raise app.UsageError("--config and --workdir are required")
    train_and_evaluate(_CONFIG.value, FLAGS.workdir)
    return 0


if __name__ == "__main__":
    sys.exit(app.run(main))
