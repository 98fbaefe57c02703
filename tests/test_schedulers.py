"""Schedules, timestep lists and samplers against diffusers' schedulers (whole trajectories with a
deterministic stand-in model), LaVie's lists against the spec's literals, the interpolation stage's
respaced DDIM against a float64 reference written from spec §3.4, and the loop inside one jit."""

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

SHAPE = (2, 3, 4, 4, 4)  # (B, F, H, W, C)
DIFFUSERS = {
    "ddpm": DDPMScheduler,
    "ddim": DDIMScheduler,
    "dpm++2m": DPMSolverMultistepScheduler,
    "euler": EulerDiscreteScheduler,
}
SD_BETAS = dict(beta_start=0.00085, beta_end=0.012)


def fake_model(x, t):
    """A deterministic stand-in for the UNet that depends on both x and t (torch, numpy or jnp). As an
    ε-prediction it is roughly right at high noise (x_t ≈ ε), so trajectories stay near unit scale."""
    lib = torch if isinstance(x, torch.Tensor) else np if isinstance(x, np.ndarray) else jnp
    return 0.9 * x + 0.2 * lib.sin(lib.asarray(t, dtype=x.dtype) / 100.0)


def assert_close(ours, ref, peak=1.0):
    """max|Δ| ≤ 1e-5, or 2e-6 of the largest |x| on the reference trajectory (`peak`) when that is
    larger: fp32 rounding is relative, and Euler starts at σ_max·z (σ_max ≈ 14.6 for SD's β, ≈ 2·10⁴
    at squaredcos_cap_v2's t = 999, where DPM-Solver's x̂0 is as large)."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    err, tol = np.abs(ours - ref).max(), max(1e-5, 2e-6 * peak)
    assert err <= tol, f"max|Δ| = {err:.3g} > {tol:.3g} (peak |x| {peak:.3g})"


def run_diffusers(name, steps, x_init, *, eta=None, custom_timesteps=None, step_kw=None, **cfg):
    """diffusers' loop → (timesteps, final sample, largest |x| on the way). Its stochastic steps draw
    from `gen`; `run_ours` replays the same draws."""
    if name in ("ddpm", "ddim"):
        cfg.setdefault("clip_sample", False)  # SD's configs; diffusers' own default clips x̂0 to ±1
    sched = DIFFUSERS[name](num_train_timesteps=1000, **cfg)
    if custom_timesteps is None:
        sched.set_timesteps(steps)
    else:
        sched.set_timesteps(timesteps=list(custom_timesteps))
    x = torch.from_numpy(x_init) * sched.init_noise_sigma
    gen, peak = torch.Generator().manual_seed(0), float(x.abs().max())
    for t in sched.timesteps:
        out = fake_model(sched.scale_model_input(x, t), t.to(torch.float32))
        kwargs = dict(step_kw or {})
        if name == "ddpm":
            kwargs["generator"] = gen  # DDPM draws randn(shape) from it when t > 0
        if eta is not None:
            kwargs.update(eta=eta, variance_noise=torch.randn(SHAPE, generator=gen))
        x = sched.step(out, t, x, **kwargs).prev_sample
        peak = max(peak, float(x.abs().max()))
    return sched.timesteps.numpy(), x.numpy(), peak


def run_ours(
    name,
    steps,
    x_init,
    *,
    eta=None,
    spacing="leading",
    timesteps_list=None,
    plan_kw=None,
    step_kw=None,
    **cfg,
):
    sampler = samplers.get_sampler(name)
    plan = sampler.make_plan(
        schedule.ScheduleConfig(**cfg), steps, spacing=spacing, timesteps=timesteps_list, **(plan_kw or {})
    )
    state = sampler.init(jnp.asarray(x_init) * sampler.init_noise_sigma(plan, spacing))
    gen = torch.Generator().manual_seed(0)
    for i in range(plan.num_steps):
        out = fake_model(sampler.scale_model_input(plan, state), plan.timesteps[i])
        options = dict(step_kw or {})
        if (name == "ddpm" and plan.timesteps[i] > 0) or eta is not None:
            options["noise"] = jnp.asarray(torch.randn(SHAPE, generator=gen).numpy())
        if eta is not None:
            options["eta"] = eta
        state = sampler.step(plan, state, out, **options)
    return np.asarray(plan.timesteps), np.asarray(state.sample)


# ----------------------------------------------------------------------------- β and ᾱ
@pytest.mark.parametrize("betas", schedule.BETA_SCHEDULES)
@pytest.mark.parametrize("start,end,n", [(1e-4, 0.02, 1000), (0.00085, 0.012, 1000), (0.00085, 0.012, 37)])
def test_alphas_cumprod_equal_diffusers_bit_for_bit(betas, start, end, n):
    ref = DDPMScheduler(num_train_timesteps=n, beta_schedule=betas, beta_start=start, beta_end=end)
    config = schedule.ScheduleConfig(
        num_train_timesteps=n, beta_schedule=betas, beta_start=start, beta_end=end
    )
    np.testing.assert_array_equal(schedule.betas(config), ref.betas.numpy())
    np.testing.assert_array_equal(schedule.alphas_cumprod(config), ref.alphas_cumprod.numpy())


def test_float64_alphas_cumprod_is_openai_cast_to_float32():
    # spec §3.4: np.linspace(1e-4, 0.02, 1000) and cumprod in float64; gathered values cast to fp32.
    ref = np.cumprod(1.0 - np.linspace(1e-4, 0.02, 1000, dtype=np.float64)).astype(np.float32)
    config = schedule.ScheduleConfig(alphas_dtype="float64")
    np.testing.assert_array_equal(schedule.alphas_cumprod(config), ref)
    assert np.abs(schedule.alphas_cumprod(schedule.ScheduleConfig()) - ref).max() > 0  # fp32 path differs


# ----------------------------------------------------------------------------- timestep lists
@pytest.mark.parametrize("name", samplers.NAMES)
@pytest.mark.parametrize("spacing", samplers.DIFFUSERS_SPACINGS)
def test_timestep_lists_equal_diffusers(name, spacing):
    for n in (1000, 999):
        for offset in (0, 1):
            for steps in (1, 7, 10, 12, 25, 50, 333):
                ref = DIFFUSERS[name](num_train_timesteps=n, timestep_spacing=spacing, steps_offset=offset)
                ref.set_timesteps(steps)
                ours = timesteps.make_timesteps(spacing, steps, n, steps_offset=offset, sampler=name)
                assert ours.dtype == ref.timesteps.numpy().dtype
                np.testing.assert_array_equal(ours, ref.timesteps.numpy())


INTERP_LIST = [
    0, 20, 41, 61, 82, 102, 122, 143, 163, 183, 204, 224, 245, 265, 285, 306, 326, 347, 367, 387,
    408, 428, 449, 469, 489, 510, 530, 550, 571, 591, 612, 632, 652, 673, 693, 714, 734, 754, 775,
    795, 816, 836, 856, 877, 897, 917, 938, 958, 979, 999,
]  # fmt: skip  # spec §3.4, literally


def test_lavie_lists_equal_the_spec():
    assert timesteps.make_timesteps("lavie_base", 50).tolist() == list(range(980, -1, -20))  # §2.4
    assert timesteps.make_timesteps("lavie_vsr", 50).tolist() == list(range(981, 0, -20))  # §4.3
    assert timesteps.make_timesteps("lavie_interpolation", 50).tolist() == INTERP_LIST[::-1]  # §3.4
    assert timesteps.space_timesteps(1000, "50") == INTERP_LIST
    for name in samplers.NAMES:  # LaVie's lists do not depend on the sampler
        assert timesteps.make_timesteps("lavie_vsr", 50, sampler=name).tolist() == list(range(981, 0, -20))


def test_space_timesteps_follows_openai_rule():
    # Lists printed by LaVie's own interpolation/diffusion/respace.py (commit 6ce851e). For 21 steps the
    # accumulated stride 999/20 reaches 499.4999… where round(10 · 999/20) would give 500.
    assert timesteps.space_timesteps(1000, "21") == [
        0, 50, 100, 150, 200, 250, 300, 350, 400, 450, 499, 549, 599, 649, 699, 749, 799, 849, 899, 949, 999,
    ]  # fmt: skip
    assert timesteps.space_timesteps(300, "10,15,20") == [
        0, 11, 22, 33, 44, 55, 66, 77, 88, 99, 100, 107, 114, 121, 128, 135, 142, 149, 157, 164, 171, 178,
        185, 192, 199, 200, 205, 210, 216, 221, 226, 231, 236, 242, 247, 252, 257, 263, 268, 273, 278, 283,
        289, 294, 299,
    ]  # fmt: skip
    assert timesteps.space_timesteps(1000, "ddim50") == list(range(0, 1000, 20))
    assert timesteps.space_timesteps(1000, [50]) == timesteps.space_timesteps(1000, "50")
    for count in (1, 2, 3, 999, 1000):
        got = timesteps.space_timesteps(1000, [count])
        assert len(got) == count and got[0] == 0 and (count == 1 or got[-1] == 999)


# ----------------------------------------------------------------------------- whole trajectories
CASES = [  # sampler, spacing, steps_offset, prediction, β schedule, steps
    ("ddpm", "leading", 1, "epsilon", "linear", 20),
    ("ddpm", "trailing", 0, "v_prediction", "scaled_linear", 10),
    ("ddpm", "linspace", 0, "epsilon", "scaled_linear", 12),
    ("ddpm", "leading", 1, "sample", "squaredcos_cap_v2", 12),
    ("ddim", "leading", 1, "epsilon", "scaled_linear", 25),
    ("ddim", "leading", 1, "v_prediction", "linear", 20),
    ("ddim", "trailing", 0, "v_prediction", "scaled_linear", 12),
    ("ddim", "linspace", 0, "epsilon", "linear", 12),
    ("ddim", "trailing", 0, "sample", "squaredcos_cap_v2", 10),
    ("dpm++2m", "linspace", 0, "epsilon", "scaled_linear", 20),
    ("dpm++2m", "leading", 1, "v_prediction", "linear", 10),
    ("dpm++2m", "trailing", 0, "epsilon", "squaredcos_cap_v2", 15),
    ("dpm++2m", "trailing", 0, "v_prediction", "scaled_linear", 25),
    ("euler", "linspace", 0, "epsilon", "scaled_linear", 20),
    ("euler", "leading", 1, "v_prediction", "linear", 12),
    ("euler", "trailing", 0, "epsilon", "linear", 10),
    ("euler", "linspace", 0, "v_prediction", "squaredcos_cap_v2", 15),
]


@pytest.mark.parametrize("name,spacing,offset,prediction,betas,steps", CASES)
def test_trajectory_matches_diffusers(name, spacing, offset, prediction, betas, steps):
    x_init = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)
    cfg = dict(beta_schedule=betas, prediction_type=prediction, **SD_BETAS)
    set_one = not (name == "ddim" and spacing == "leading")  # exercise both final-ᾱ rules
    extra = {"set_alpha_to_one": set_one} if name == "ddim" else {}
    ref_t, ref_x, peak = run_diffusers(
        name, steps, x_init, timestep_spacing=spacing, steps_offset=offset, **cfg, **extra
    )
    plan_kw = dict(steps_offset=offset, set_alpha_to_one=set_one)
    t, x = run_ours(name, steps, x_init, spacing=spacing, plan_kw=plan_kw, **cfg)
    np.testing.assert_array_equal(t, ref_t.astype(np.float32))
    assert_close(x, ref_x, peak)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_ddim_eta_matches_diffusers_with_the_same_noise(prediction):
    x_init = np.random.default_rng(2).standard_normal(SHAPE).astype(np.float32)
    cfg = dict(beta_schedule="scaled_linear", prediction_type=prediction, **SD_BETAS)
    _, ref, peak = run_diffusers(
        "ddim", 15, x_init, eta=0.7, timestep_spacing="leading", steps_offset=1, **cfg
    )
    _, ours = run_ours("ddim", 15, x_init, eta=0.7, plan_kw=dict(steps_offset=1), **cfg)
    assert_close(ours, ref, peak)


@pytest.mark.parametrize("name,rederive", [("ddpm", False), ("ddim", False), ("ddim", True)])
def test_clip_sample_matches_diffusers(name, rederive):
    x_init = 3.0 * np.random.default_rng(3).standard_normal(SHAPE).astype(np.float32)  # x̂0 beyond ±1
    cfg = dict(beta_schedule="linear", prediction_type="epsilon", beta_start=1e-4, beta_end=0.02)
    step_kw = {"use_clipped_model_output": rederive} if name == "ddim" else {}
    _, ref, peak = run_diffusers(
        name, 10, x_init, clip_sample=True, clip_sample_range=1.0, step_kw=step_kw, **cfg
    )
    _, ours = run_ours(name, 10, x_init, step_kw=dict(clip_sample=1.0, **step_kw), **cfg)
    assert_close(ours, ref, peak)


@pytest.mark.parametrize("name", ["dpm++2m", "euler", "ddpm"])
def test_custom_timestep_list_steps_to_the_next_entry(name):
    custom = [999, 850, 700, 520, 400, 260, 130, 40, 0]  # non-uniform: the target must be the next entry
    x_init = np.random.default_rng(4).standard_normal(SHAPE).astype(np.float32)
    cfg = dict(beta_schedule="scaled_linear", prediction_type="epsilon", **SD_BETAS)
    _, ref, peak = run_diffusers(name, len(custom), x_init, custom_timesteps=custom, **cfg)
    _, ours = run_ours(name, len(custom), x_init, timesteps_list=np.array(custom), spacing="linspace", **cfg)
    assert_close(ours, ref, peak)


# ----------------------------------------------------------------------------- LaVie's three stages
def test_lavie_base_ddpm_matches_diffusers_custom_timesteps():
    """Spec §2.4: DDPM over 980..0 with prev = next entry (ᾱ_prev = 1 after 0), linear β, ε."""
    x_init = np.random.default_rng(5).standard_normal(SHAPE).astype(np.float32)
    cfg = dict(beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
    lavie = timesteps.make_timesteps("lavie_base", 50)
    _, ref, peak = run_diffusers("ddpm", 50, x_init, custom_timesteps=lavie.tolist(), steps_offset=1, **cfg)
    # LaVie's scheduler config says set_alpha_to_one=False; DDPM ignores it, as diffusers does.
    plan_kw = dict(steps_offset=1, set_alpha_to_one=False)
    t, ours = run_ours("ddpm", 50, x_init, spacing="lavie_base", plan_kw=plan_kw, **cfg)
    assert t.tolist() == list(range(980, -1, -20))
    assert_close(ours, ref, peak)


def test_lavie_vsr_ddim_vprediction_matches_diffusers():
    """Spec §4.3: DDIM, v-prediction, linear β, steps_offset 1 → 981..1, final ᾱ = ᾱ_0."""
    x_init = np.random.default_rng(6).standard_normal(SHAPE).astype(np.float32)
    cfg = dict(beta_schedule="linear", prediction_type="v_prediction", beta_start=1e-4, beta_end=0.02)
    ref_t, ref, peak = run_diffusers("ddim", 50, x_init, steps_offset=1, set_alpha_to_one=False, **cfg)
    plan_kw = dict(set_alpha_to_one=False)
    t, ours = run_ours("ddim", 50, x_init, spacing="lavie_vsr", plan_kw=plan_kw, **cfg)
    assert ref_t.tolist() == t.tolist() == list(range(981, 0, -20))
    assert_close(ours, ref, peak)


def test_lavie_interpolation_respaced_ddim_vs_float64_reference():
    """Spec §3.4: OpenAI SpacedDiffusion DDIM (η = 0, ε, no clipping), written here in float64: respaced
    ᾱ are ᾱ at the kept steps, ᾱ_prev = 1 at the last step, ε re-derived from x̂0."""
    ab = np.cumprod(1.0 - np.linspace(1e-4, 0.02, 1000, dtype=np.float64))
    x_init = np.random.default_rng(7).standard_normal(SHAPE)
    x, seq = x_init.copy(), INTERP_LIST[::-1]
    peak = np.abs(x).max()
    for k, t in enumerate(seq):
        eps = fake_model(x, float(t))
        a, a_prev = ab[t], (ab[seq[k + 1]] if k + 1 < len(seq) else 1.0)
        x0 = np.sqrt(1 / a) * x - np.sqrt(1 / a - 1) * eps
        eps = (np.sqrt(1 / a) * x - x0) / np.sqrt(1 / a - 1)
        x = np.sqrt(a_prev) * x0 + np.sqrt(1 - a_prev) * eps
        peak = max(peak, np.abs(x).max())
    cfg = dict(beta_start=1e-4, beta_end=0.02, alphas_dtype="float64")
    _, ours = run_ours("ddim", 50, x_init.astype(np.float32), spacing="lavie_interpolation", **cfg)
    assert_close(ours, x, peak)


# ----------------------------------------------------------------------------- jit
@pytest.mark.parametrize("name", samplers.NAMES)
def test_whole_loop_runs_in_one_jit(name):
    sampler = samplers.get_sampler(name)
    plan = sampler.make_plan(
        schedule.ScheduleConfig(beta_schedule="scaled_linear", **SD_BETAS), 8, steps_offset=1
    )
    x_init = jnp.asarray(np.random.default_rng(8).standard_normal(SHAPE).astype(np.float32))

    def body(i, state):
        return sampler.step(
            plan, state, fake_model(sampler.scale_model_input(plan, state), plan.timesteps[i])
        )

    @jax.jit
    def sample(x, key):
        return jax.lax.fori_loop(0, plan.num_steps, body, sampler.init(x, key)).sample

    out = sample(x_init, jax.random.key(0))
    eager = sampler.init(x_init, jax.random.key(0))
    for i in range(plan.num_steps):
        eager = body(i, eager)
    assert_close(out, eager.sample)
    assert np.isfinite(np.asarray(out)).all()


def test_prediction_conversions_round_trip():
    rng = np.random.default_rng(9)
    x0, eps = rng.standard_normal((2, 3, 4, 4, 4)), rng.standard_normal((2, 3, 4, 4, 4))
    ab = np.array([0.9, 0.3]).reshape(2, 1, 1, 1, 1)
    x_t = np.sqrt(ab) * x0 + np.sqrt(1 - ab) * eps
    for kind in schedule.PREDICTION_TYPES:
        pred = schedule.from_x0_and_eps(kind, x0, eps, ab)
        back_x0, back_eps = schedule.to_x0_and_eps(kind, pred, x_t, ab)
        np.testing.assert_allclose(back_x0, x0, atol=1e-6)
        np.testing.assert_allclose(back_eps, eps, atol=1e-6)


def test_bad_arguments():
    config = schedule.ScheduleConfig()
    with pytest.raises(ValueError, match=r"sampler='heun'.*'ddpm', 'ddim', 'dpm\+\+2m', 'euler'"):
        samplers.get_sampler("heun")
    with pytest.raises(ValueError, match="sampler='heun'"):
        samplers.make_plan("heun", config, 10)
    with pytest.raises(ValueError, match="steps=0"):
        samplers.make_plan("ddim", config, 0)
    with pytest.raises(ValueError, match="expected strictly descending"):
        samplers.make_plan("ddpm", config, 3, timesteps=np.array([0, 500, 999]))
    with pytest.raises(ValueError, match="expected a 1-D list of steps=4"):
        samplers.make_plan("ddpm", config, 4, timesteps=np.array([999, 500, 0]))
    with pytest.raises(ValueError, match="eta=0.5"):
        plan = samplers.make_plan("euler", config, 4)
        samplers.step("euler", plan, samplers.init(jnp.zeros(SHAPE)), jnp.zeros(SHAPE), eta=0.5)
    with pytest.raises(ValueError, match="spacing='weird'"):
        timesteps.make_timesteps("weird", 10)
    with pytest.raises(ValueError, match="cannot take 60 steps from 50"):
        timesteps.space_timesteps(100, "60,10")
    with pytest.raises(ValueError, match="beta_schedule='cosine'"):
        schedule.ScheduleConfig(beta_schedule="cosine")
    with pytest.raises(ValueError, match="prediction_type='x0'"):
        schedule.to_x0_and_eps("x0", jnp.zeros(3), jnp.zeros(3), 0.5)
