"""Samplers and timestep lists against diffusers' schedulers over whole trajectories, and LaVie's lists
against the spec's literals."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
)

from lavie_jax.diffusion import samplers, schedule, timesteps

SHAPE = (2, 3, 4, 4, 4)
DIFFUSERS = {
    "ddpm": DDPMScheduler,
    "ddim": DDIMScheduler,
    "dpm++2m": DPMSolverMultistepScheduler,
    "euler": EulerDiscreteScheduler,
}


def fake_model(x, t):
    """A deterministic stand-in for the UNet that depends on both x and t (numpy or torch)."""
    lib = torch if isinstance(x, torch.Tensor) else jnp
    return 0.1 * x + lib.sin(lib.asarray(t, dtype=x.dtype) / 100.0) * 0.5


def close(ours, ref, tol=1e-5):
    """max|Δ| ≤ tol relative to the trajectory's scale (the stand-in model lets samples grow)."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return np.abs(ours - ref).max() <= tol * max(1.0, np.abs(ref).max())


def run_diffusers(name, steps, x_init, generator_seed=0, eta=None, **cfg):
    if name in ("ddpm", "ddim"):
        cfg.setdefault("clip_sample", False)  # SD's scheduler configs; diffusers' default clips x̂0 to ±1
    sched = DIFFUSERS[name](num_train_timesteps=1000, **cfg)
    sched.set_timesteps(steps)
    x = torch.from_numpy(x_init) * sched.init_noise_sigma
    gen = torch.Generator().manual_seed(generator_seed)
    for t in sched.timesteps:
        model_in = sched.scale_model_input(x, t)
        out = fake_model(model_in, t.to(torch.float32))
        kwargs = {}
        if name == "ddpm":
            kwargs["generator"] = gen
        if eta is not None:
            kwargs["eta"] = eta
            kwargs["variance_noise"] = torch.randn(x.shape, generator=gen)
        x = sched.step(out, t, x, **kwargs).prev_sample
    return sched.timesteps.numpy(), x.numpy()


def run_ours(
    name,
    steps,
    x_init,
    generator_seed=0,
    eta=None,
    spacing="leading",
    steps_offset=0,
    set_alpha_to_one=True,
    **cfg,
):
    config = schedule.ScheduleConfig(**cfg)
    plan = samplers.make_plan(
        name, config, steps, spacing=spacing, steps_offset=steps_offset, set_alpha_to_one=set_alpha_to_one
    )
    state = samplers.init(jnp.asarray(x_init) * samplers.init_noise_sigma(name, plan, spacing))
    gen = torch.Generator().manual_seed(generator_seed)
    for i in range(plan.num_steps):
        model_in = samplers.scale_model_input(name, plan, state)
        out = fake_model(model_in, plan.timesteps[i])
        noise = None
        if (name == "ddpm" and plan.timesteps[i] > 0) or eta is not None:
            noise = jnp.asarray(torch.randn(SHAPE, generator=gen).numpy())
        state = samplers.step(name, plan, state, out, eta=eta or 0.0, noise=noise)
    return np.asarray(plan.timesteps), np.asarray(state.sample)


CASES = [
    ("ddpm", "leading", 1, "epsilon", "linear", 20),
    ("ddpm", "trailing", 0, "v_prediction", "scaled_linear", 10),
    ("ddpm", "linspace", 0, "epsilon", "scaled_linear", 12),
    ("ddpm", "leading", 1, "epsilon", "squaredcos_cap_v2", 12),
    ("ddim", "leading", 1, "epsilon", "scaled_linear", 25),
    ("ddim", "leading", 1, "v_prediction", "linear", 20),
    ("ddim", "trailing", 0, "v_prediction", "scaled_linear", 10),
    ("ddim", "linspace", 0, "epsilon", "linear", 12),
    ("dpm++2m", "linspace", 0, "epsilon", "scaled_linear", 20),
    ("dpm++2m", "leading", 1, "v_prediction", "linear", 10),
    ("dpm++2m", "trailing", 0, "epsilon", "squaredcos_cap_v2", 15),
    ("euler", "linspace", 0, "epsilon", "scaled_linear", 20),
    ("euler", "leading", 1, "v_prediction", "linear", 12),
    ("euler", "trailing", 0, "epsilon", "linear", 10),
]


@pytest.mark.parametrize("name,spacing,offset,prediction,betas,steps", CASES)
def test_trajectory_matches_diffusers(name, spacing, offset, prediction, betas, steps):
    x_init = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)
    set_one = name != "ddim" or spacing != "leading"  # exercise both final-alpha rules
    cfg = dict(beta_schedule=betas, prediction_type=prediction, beta_start=0.00085, beta_end=0.012)
    extra = {"set_alpha_to_one": set_one} if name == "ddim" else {}
    ref_t, ref_x = run_diffusers(
        name, steps, x_init, timestep_spacing=spacing, steps_offset=offset, **cfg, **extra
    )
    t, x = run_ours(
        name, steps, x_init, spacing=spacing, steps_offset=offset, set_alpha_to_one=set_one, **cfg
    )
    np.testing.assert_allclose(t, ref_t.astype(np.float32), rtol=0, atol=1e-4)
    assert close(x, ref_x)


def test_ddim_eta_matches_diffusers():
    x_init = np.random.default_rng(2).standard_normal(SHAPE).astype(np.float32)
    cfg = dict(beta_schedule="scaled_linear", prediction_type="epsilon", beta_start=0.00085, beta_end=0.012)
    _, ref = run_diffusers("ddim", 15, x_init, eta=0.7, timestep_spacing="leading", steps_offset=1, **cfg)
    _, ours = run_ours("ddim", 15, x_init, eta=0.7, spacing="leading", steps_offset=1, **cfg)
    assert close(ours, ref)


def test_lavie_base_ddpm_list_and_trajectory():
    expected = list(range(980, -1, -20))  # spec §2.4: 980, 960, …, 20, 0
    assert timesteps.make_timesteps("lavie_base", 50).tolist() == expected
    x_init = np.random.default_rng(3).standard_normal(SHAPE).astype(np.float32)
    sched = DDPMScheduler(
        beta_start=1e-4, beta_end=0.02, beta_schedule="linear", steps_offset=1, clip_sample=False
    )
    sched.set_timesteps(timesteps=expected)  # diffusers' custom timesteps: the 0.16 list
    gen = torch.Generator().manual_seed(0)
    x = torch.from_numpy(x_init)
    for t in sched.timesteps:
        x = sched.step(fake_model(x, t.float()), t, x, generator=gen).prev_sample
    _, ours = run_ours("ddpm", 50, x_init, spacing="lavie_base", beta_start=1e-4, beta_end=0.02)
    assert close(ours, x.numpy())


def test_lavie_vsr_ddim_vprediction_list():
    expected = list(range(981, 0, -20))  # spec §4.3: 981, 961, …, 21, 1
    assert timesteps.make_timesteps("lavie_vsr", 50).tolist() == expected
    x_init = np.random.default_rng(4).standard_normal(SHAPE).astype(np.float32)
    cfg = dict(beta_schedule="linear", prediction_type="v_prediction", beta_start=1e-4, beta_end=0.02)
    ref_t, ref = run_diffusers(
        "ddim", 50, x_init, steps_offset=1, set_alpha_to_one=False, clip_sample=False, **cfg
    )
    t, ours = run_ours("ddim", 50, x_init, spacing="lavie_vsr", set_alpha_to_one=False, **cfg)
    assert ref_t.tolist() == expected and t.tolist() == expected
    assert close(ours, ref)


INTERP_LIST = [
    0,
    20,
    41,
    61,
    82,
    102,
    122,
    143,
    163,
    183,
    204,
    224,
    245,
    265,
    285,
    306,
    326,
    347,
    367,
    387,
    408,
    428,
    449,
    469,
    489,
    510,
    530,
    550,
    571,
    591,
    612,
    632,
    652,
    673,
    693,
    714,
    734,
    754,
    775,
    795,
    816,
    836,
    856,
    877,
    897,
    917,
    938,
    958,
    979,
    999,
]  # spec §3.4, literally


def test_lavie_interpolation_respaced_ddim_vs_float64_reference():
    assert timesteps.make_timesteps("lavie_interpolation", 50).tolist() == INTERP_LIST[::-1]
    # OpenAI GaussianDiffusion + SpacedDiffusion DDIM (η = 0), float64, written from spec §3.4.
    ab = np.cumprod(1.0 - np.linspace(1e-4, 0.02, 1000, dtype=np.float64))
    x_init = np.random.default_rng(5).standard_normal(SHAPE)
    x = x_init.copy()
    seq = INTERP_LIST[::-1]
    for k, t in enumerate(seq):
        eps = 0.1 * x + np.sin(t / 100.0) * 0.5
        a, a_prev = ab[t], (ab[seq[k + 1]] if k + 1 < len(seq) else 1.0)
        x0 = np.sqrt(1 / a) * x - np.sqrt(1 / a - 1) * eps
        eps2 = (np.sqrt(1 / a) * x - x0) / np.sqrt(1 / a - 1)
        x = np.sqrt(a_prev) * x0 + np.sqrt(1 - a_prev) * eps2
    _, ours = run_ours(
        "ddim",
        50,
        x_init.astype(np.float32),
        spacing="lavie_interpolation",
        beta_start=1e-4,
        beta_end=0.02,
        alphas_dtype="float64",
    )
    assert close(ours, x)


@pytest.mark.parametrize("name", samplers.NAMES)
def test_whole_loop_runs_in_one_jit(name):
    config = schedule.ScheduleConfig(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    plan = samplers.make_plan(name, config, 8, spacing="leading", steps_offset=1)
    x_init = jnp.asarray(np.random.default_rng(6).standard_normal(SHAPE).astype(np.float32))

    @jax.jit
    def sample(x, key):
        def body(i, state):
            model_in = samplers.scale_model_input(name, plan, state)
            return samplers.step(name, plan, state, fake_model(model_in, plan.timesteps[i]))

        return jax.lax.fori_loop(0, plan.num_steps, body, samplers.init(x, key)).sample

    out = sample(x_init, jax.random.key(0))
    eager = samplers.init(x_init, jax.random.key(0))
    for i in range(plan.num_steps):
        eager = samplers.step(
            name, plan, eager, fake_model(samplers.scale_model_input(name, plan, eager), plan.timesteps[i])
        )
    assert np.abs(np.asarray(out) - np.asarray(eager.sample)).max() <= 1e-5
    assert np.isfinite(np.asarray(out)).all()


def test_bad_arguments():
    config = schedule.ScheduleConfig()
    with pytest.raises(ValueError, match="sampler='heun'"):
        samplers.make_plan("heun", config, 10)
    with pytest.raises(ValueError, match="steps=0"):
        samplers.make_plan("ddim", config, 0)
    with pytest.raises(ValueError, match="spacing='weird'"):
        timesteps.make_timesteps("weird", 10)
    with pytest.raises(ValueError, match="beta_schedule='cosine'"):
        schedule.ScheduleConfig(beta_schedule="cosine")
