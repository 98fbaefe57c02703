"""Training targets and weights vs diffusers' DDPMScheduler and a numpy min-SNR-γ reference."""

import jax
import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from lavie_jax.diffusion import losses, schedule


@pytest.fixture()
def setup():
    config = schedule.ScheduleConfig(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    sched = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((4, 3, 8, 8, 4)).astype(np.float32)
    noise = rng.standard_normal(x0.shape).astype(np.float32)
    t = np.array([0, 17, 500, 999])
    return schedule.make_schedule(config), sched, x0, noise, t


def test_add_noise_and_velocity_match_diffusers(setup):
    sch, sched, x0, noise, t = setup
    ref_noisy = sched.add_noise(torch.from_numpy(x0), torch.from_numpy(noise), torch.from_numpy(t)).numpy()
    ref_v = sched.get_velocity(torch.from_numpy(x0), torch.from_numpy(noise), torch.from_numpy(t)).numpy()
    np.testing.assert_allclose(schedule.add_noise(sch, x0, noise, t), ref_noisy, atol=1e-5)
    np.testing.assert_allclose(losses.training_target(sch, x0, noise, t, "v_prediction"), ref_v, atol=1e-5)
    np.testing.assert_array_equal(losses.training_target(sch, x0, noise, t, "epsilon"), noise)
    np.testing.assert_array_equal(losses.training_target(sch, x0, noise, t, "sample"), x0)
    ab = sched.alphas_cumprod.numpy()[t].reshape(-1, 1, 1, 1, 1)
    for kind in ("epsilon", "v_prediction", "sample"):  # the samplers' conversion gives the same target
        np.testing.assert_allclose(
            schedule.from_x0_and_eps(kind, x0, noise, ab),
            losses.training_target(sch, x0, noise, t, kind),
            atol=1e-6,
        )
    with pytest.raises(ValueError, match="prediction_type='eps'"):
        losses.training_target(sch, x0, noise, t, "eps")


def test_predictions_convert_back_to_x0(setup):
    sch, _, x0, noise, t = setup
    x_t = schedule.add_noise(sch, x0, noise, t)
    ab = sch.alphas_cumprod[t].reshape(-1, 1, 1, 1, 1)
    for kind, target in (("epsilon", noise), ("v_prediction", schedule.velocity(sch, x0, noise, t))):
        x0_hat, eps_hat = schedule.to_x0_and_eps(kind, target, x_t, ab)
        keep = np.asarray(t) < 999  # at t = 999 ᾱ ≈ 0: x0 from ε is ill-conditioned
        np.testing.assert_allclose(np.asarray(x0_hat)[keep], x0[keep], atol=2e-3)
        np.testing.assert_allclose(np.asarray(eps_hat)[1:], noise[1:], atol=2e-3)


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", "sample"])
def test_min_snr_weights_vs_numpy(setup, kind):
    """Hang et al. 2023: weight min(SNR, γ) on the x0 loss, divided by SNR for ε and by SNR + 1 for v."""
    sch, sched, _, _, t = setup
    ab = sched.alphas_cumprod.numpy().astype(np.float64)[t]
    snr = ab / (1 - ab)
    expected = np.minimum(snr, 5.0) / {"epsilon": snr, "v_prediction": snr + 1, "sample": 1.0}[kind]
    np.testing.assert_allclose(losses.min_snr_weight(sch, t, 5.0, kind), expected, rtol=1e-5)
    np.testing.assert_allclose(schedule.snr(sch, t), snr, rtol=1e-5)
    np.testing.assert_array_equal(losses.min_snr_weight(sch, t, None, kind), np.ones(4))


def test_loss_is_weighted_per_example_mse(setup):
    sch, _, x0, noise, t = setup
    got = losses.diffusion_loss(sch, x0, noise, t, prediction_type="epsilon", min_snr_gamma=5.0)
    mse = ((x0 - noise) ** 2).reshape(4, -1).mean(1)
    np.testing.assert_allclose(
        got, mse * np.asarray(losses.min_snr_weight(sch, t, 5.0, "epsilon")), rtol=1e-5
    )
    plain = losses.diffusion_loss(sch, x0, noise, t, prediction_type="epsilon")
    np.testing.assert_allclose(plain, mse, rtol=1e-5)


def test_noise_offset_adds_a_per_channel_constant():
    key = jax.random.key(0)
    plain = losses.offset_noise(key, (2, 3, 4, 4, 5), 0.0)
    shifted = losses.offset_noise(key, (2, 3, 4, 4, 5), 0.1)
    diff = np.asarray(shifted - plain)
    assert np.abs(diff).max() > 0
    np.testing.assert_allclose(diff, np.broadcast_to(diff[:, :1, :1, :1, :], diff.shape), atol=1e-6)
    assert losses.sample_timesteps(key, 1000, 1000).max() < 1000
    assert np.unique(np.asarray(losses.sample_timesteps(key, 1000, 1000))).size > 500
