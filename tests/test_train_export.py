"""Stage 'vae' (the autoencoder objective) and exporting runs as model folders the sampler loads."""

import jax
import numpy as np
import pytest
import torch
import train_helpers
from flax import traverse_util

from lavie_jax import train
from lavie_jax.models import vae as vae_lib
from lavie_jax.pipelines import base as base_pipeline
from lavie_jax.training import autoencoder, export


def dotted(tree: dict) -> dict:
    return {".".join(map(str, k)): np.asarray(v) for k, v in traverse_util.flatten_dict(tree).items()}


VAE_RUN = {"stage": "vae", "data.num_images": 2, "optim.warmup_steps": 0}


def test_kl_matches_torch_distributions():
    rng = np.random.default_rng(0)
    mean, logvar = rng.normal(size=(2, 5)), rng.normal(size=(2, 5))
    ours = np.asarray(autoencoder.kl_to_standard_normal(mean, logvar))
    q = torch.distributions.Normal(torch.tensor(mean), torch.tensor(np.exp(0.5 * logvar)))
    expected = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


def test_vae_stage_learns_and_exports_with_measured_scaling(tmp_path):
    config = train_helpers.tiny_config(num_steps=30, log_every=10, **{"optim.learning_rate": 3e-3}, **VAE_RUN)
    state = train.train_and_evaluate(config, tmp_path / "run")
    losses = [r["loss"] for r in train_helpers.records(tmp_path / "run")]
    assert losses[-1] < 0.7 * losses[0], losses

    out = export.export_model(tmp_path / "run", tmp_path / "model" / "vae")
    vae = vae_lib.load_vae(out)
    assert (
        train_helpers.max_abs_diff(
            {"p": export._flat(vae)["encoder.conv_in.kernel"]},
            {"p": state.ema_params["encoder"]["conv_in"]["kernel"]},
        )
        == 0.0
    )
    frames = export.training_frames(config, tmp_path / "run", 2)
    latents = np.asarray(jax.jit(lambda x: vae.encode(x).mean)(frames)) * vae.config.scaling_factor
    assert np.std(latents) == pytest.approx(1.0, rel=0.2)  # on frames of the same data

    with pytest.raises(ValueError, match="already exists"):
        export.export_model(tmp_path / "run", out)

    # A base run whose frozen VAE is that one (encoders_from: a folder holding vae/ only).
    base = train_helpers.tiny_config(num_steps=1, encoders_from=str(tmp_path / "model"))
    encoders = train.build_encoders(base)
    assert train_helpers.max_abs_diff(export._flat(encoders.vae), export._flat(vae)) == 0.0
    # A folder that is gone (e.g. moved after training; the export rebuilds the encoders) is an error,
    # not random encoders of config.vae's shape.
    gone = train_helpers.tiny_config(num_steps=1, encoders_from=str(tmp_path / "moved"))
    with pytest.raises(ValueError, match=r"config.encoders_from='.*moved': no such folder"):
        train.build_encoders(gone)


def test_base_run_exports_a_model_folder_the_pipeline_loads(tmp_path):
    state = train.train_and_evaluate(train_helpers.tiny_config(num_steps=2, ema_decay=0.5), tmp_path / "run")
    with pytest.raises(ValueError, match=r"no checkpoint 7; it has \[2\]"):
        export.export_model(tmp_path / "run", tmp_path / "never", step=7)
    folder = export.export_model(tmp_path / "run", tmp_path / "model", sampling={"steps": 2})
    pipe = base_pipeline.BasePipeline.from_pretrained(folder)
    unet = export._flat(pipe.unet)
    ema, params = dotted(state.ema_params), dotted(state.params)
    assert set(unet) == set(ema)
    assert max(float(np.max(np.abs(unet[k] - ema[k]))) for k in unet) == 0.0
    assert max(float(np.max(np.abs(unet[k] - params[k]))) for k in unet) > 0  # EMA, not the raw weights
    assert (pipe.defaults.num_frames, pipe.defaults.height, pipe.defaults.width) == (4, 32, 32)
    assert (pipe.defaults.steps, pipe.defaults.sampler) == (2, "ddpm")
    frames = pipe(["a red circle moving left"], seed=0)
    assert frames.shape == (1, 4, 32, 32, 3) and frames.dtype == np.uint8


def test_text_encoder_trains_with_the_unet_and_is_exported(tmp_path):
    frozen_run = train_helpers.tiny_config(num_steps=1)
    train.train_and_evaluate(frozen_run, tmp_path / "frozen")
    joint_run = train_helpers.tiny_config(num_steps=2, ema_decay=0.5, train_text_encoder=True)
    state = train.train_and_evaluate(joint_run, tmp_path / "joint")
    # It starts as the frozen encoder: the first step sees the same context, so the same loss.
    first = [train_helpers.records(tmp_path / run)[0]["loss"] for run in ("frozen", "joint")]
    assert first[0] == pytest.approx(first[1], rel=1e-6, abs=1e-7)

    start = export._flat(train.build_encoders(joint_run).text_encoder)
    trained = {f"text_encoder.{k}": v for k, v in dotted(state.params["text_encoder"]).items()}
    moved = [k for k in start if np.max(np.abs(trained[f"text_encoder.{k}"] - start[k])) > 0]
    assert "embeddings.token_embedding.embedding" in moved and "final_layer_norm.scale" in moved

    folder = export.export_model(tmp_path / "joint", tmp_path / "model", sampling={"steps": 2})
    pipe = base_pipeline.BasePipeline.from_pretrained(folder)
    ema = dotted(state.ema_params)
    for name, module in (("text_encoder", pipe.text_encoder), ("unet", pipe.unet)):
        ours = export._flat(module)
        assert {f"{name}.{k}" for k in ours} == {k for k in ema if k.startswith(name + ".")}
        assert max(float(np.max(np.abs(ours[k] - ema[f"{name}.{k}"]))) for k in ours) == 0.0
    frames = pipe(["a red circle moving left"], seed=0)
    assert frames.shape == (1, 4, 32, 32, 3) and frames.dtype == np.uint8


def test_train_text_encoder_needs_the_encoder_in_the_step(tmp_path):
    config = train_helpers.tiny_config(train_text_encoder=True, **{"data.precomputed": True})
    with pytest.raises(ValueError, match=r"config.train_text_encoder=True; expected False for stage='vae'"):
        train.train_and_evaluate(config, tmp_path / "run")
