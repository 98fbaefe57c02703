"""The interpolation pipeline: the copied conditioning (spec §3.3), one UNet call per step on both CFG
halves, the stage's prompt conventions, output shapes, and argument checks before compiling."""

import dataclasses

import jax
import numpy as np
import pytest
import tiny_stages
from flax import nnx

from lavie_jax.diffusion import keyframes
from lavie_jax.pipelines import interpolation, stage_defaults
from lavie_jax.training import objectives

# Spec §3.3, written out: output frame j is conditioned on base frame ⌊(j+1)/4⌋.
SPEC_16_TO_61 = [0, 0, 0] + [k for k in range(1, 15) for _ in range(4)] + [15, 15]


def test_copy_indices_16_to_61_is_the_spec_list():
    assert len(SPEC_16_TO_61) == 61
    assert keyframes.copy_indices(16).tolist() == SPEC_16_TO_61
    # The training objective's ground-truth keyframes (4k in the 61-frame clip) are the same frames.
    np.testing.assert_array_equal(objectives.keyframe_indices(61), 4 * keyframes.copy_indices(16))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 17])
def test_copy_indices_n_to_4n_minus_3(n):
    idx = keyframes.copy_indices(n)
    assert keyframes.num_output_frames(n) == len(idx) == 4 * n - 3
    assert idx[0] == 0 and idx[-1] == n - 1
    np.testing.assert_array_equal(idx[::4], np.arange(n))  # base frame k lands on output frame 4k
    assert np.all(np.diff(idx) >= 0) and np.all(np.diff(idx) <= 1)


class Spy(nnx.Module):
    """Wraps the UNet and records, at run time, every call's input (one call per denoising step)."""

    calls: list = []

    def __init__(self, unet):
        self.unet, self.config = unet, unet.config

    def __call__(self, x, t, context, **kwargs):
        jax.debug.callback(lambda x: Spy.calls.append(np.asarray(x)), x)
        return self.unet(x, t, context, **kwargs)


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    folder = tiny_stages.build(tmp_path_factory.mktemp("interp"), "interpolation")
    return interpolation.InterpolationPipeline.from_pretrained(folder)


@pytest.fixture(scope="module")
def base_video():
    return np.random.default_rng(0).integers(0, 256, (1, 4, 16, 16, 3), dtype=np.uint8)


def test_stage_defaults_are_the_released_ones(pipe):
    d = pipe.defaults
    assert d == dataclasses.replace(stage_defaults.interpolation_stage(), steps=2, height=16, width=16)
    assert (d.sampler, d.spacing, d.guidance, d.cfg_order, d.negative_prompt) == (
        "ddim",
        "lavie_interpolation",
        4.0,
        "cond_first",
        "None",
    )
    plan = d.plan("ddim", 50)
    assert np.asarray(plan.timesteps)[:3].tolist() == [999, 979, 958]
    assert float(plan.alpha_prev[-1]) == 1.0  # OpenAI's DDIM: ᾱ_prev = 1 at the last step


def test_one_unet_call_per_step_on_both_halves_with_copied_frames(pipe, base_video):
    Spy.calls.clear()
    inner = pipe.unet
    pipe.unet = Spy(inner)
    try:
        video = pipe(["a cat", "red"], np.concatenate([base_video, base_video[:, ::-1]]), steps=3, seed=1)
    finally:
        pipe.unet = inner
    assert video.shape == (2, 13, 16, 16, 3) and video.dtype == np.uint8
    assert len(Spy.calls) == 3  # three steps, one UNet call each
    x = Spy.calls[0]
    assert x.shape == (4, 13, 8, 8, 8)  # (2B, 4N−3, h, w, x_t ++ copied): both CFG halves at once
    copied = x[..., 4:]
    np.testing.assert_array_equal(copied[:2], copied[2:])  # the same conditioning in both halves
    idx = keyframes.copy_indices(4)
    for j in range(13):
        for k in range(13):
            same = np.array_equal(copied[:, j], copied[:, k])
            assert same == (idx[j] == idx[k]), (j, k)


def test_same_seed_same_video(pipe, base_video):
    a = pipe(["a cat"], base_video, steps=2, seed=3)
    b = pipe(["a cat"], base_video.astype(np.float32) / 255 * 2 - 1, steps=2, seed=3)
    c = pipe(["a cat"], base_video, steps=2, seed=4)
    np.testing.assert_array_equal(a, b)  # uint8 and [-1, 1] float inputs are the same video
    assert np.abs(a.astype(int) - c.astype(int)).max() > 0


def test_prompt_conventions(pipe, base_video):
    request = pipe.prepare(["a cat"], base_video)
    np.testing.assert_array_equal(request.prompt_ids, pipe.tokenizer(["a cat, 4k."]))
    np.testing.assert_array_equal(request.negative_ids, pipe.tokenizer(["None"]))
    assert request.latent_shape == (1, 13, 8, 8, 4) and request.fps == 24.0


@pytest.mark.parametrize(
    "video,match",
    [
        (np.zeros((1, 1, 16, 16, 3), np.uint8), r"video frames N=1: expected ≥ 2"),
        (np.zeros((1, 4, 18, 16, 3), np.uint8), r"video height×width=18×16: both must be multiples of 4"),
        (np.zeros((2, 4, 16, 16, 3), np.uint8), r"video batch B=2: expected one video per prompt \(1\)"),
        (np.zeros((1, 4, 16, 16), np.uint8), r"expected \(B, N, H, W, 3\)"),
        (np.full((1, 4, 16, 16, 3), 3.0, np.float32), r"expected \[-1, 1\]"),
    ],
)
def test_bad_video_fails_before_compiling(pipe, video, match):
    with pytest.raises(ValueError, match=match):
        pipe.prepare(["a cat"], video)


def test_bad_arguments_fail_before_compiling(pipe, base_video):
    with pytest.raises(ValueError, match="steps=0"):
        pipe.prepare(["a cat"], base_video, steps=0)
    with pytest.raises(ValueError, match="sampler='heun'"):
        pipe.prepare(["a cat"], base_video, sampler="heun")
