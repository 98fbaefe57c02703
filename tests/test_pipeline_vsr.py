"""The VSR pipeline and its windows: blending frame chunks and spatial tiles (a whole-clip window is
unchunked processing; overlaps leave no seams on constant motion), the low-res noise augmentation
(spec §4.3), one compiled program for every window, shapes, and argument checks before compiling."""

import dataclasses
import itertools

import numpy as np
import pytest
import tiny_stages

from lavie_jax.diffusion import schedule
from lavie_jax.pipelines import stage_defaults, tiling, vsr


# ---------------------------------------------------------------------------------------- tiling
def upsample(x, scale):
    """Nearest ×scale in H and W: ``(B, F, H, W, C)`` → ``(B, F, sH, sW, C)``."""
    return x.repeat(scale, axis=2).repeat(scale, axis=3)


def offset_per_window(x, scale, offsets):
    """A per-window function whose result is known: the window upsampled, plus the window's own
    constant offset (as if each window's sampling drifted differently) — a seam shows as a jump."""
    counter = itertools.count()

    def fn(slices):
        return upsample(x[(slice(None), *slices)], scale) + offsets[next(counter) % len(offsets)]

    return fn


@pytest.mark.parametrize(
    "axes",
    [
        (tiling.Axis(13, 4, 0), tiling.Axis(12, 8, 4), tiling.Axis(12, None)),
        (tiling.Axis(13, 5, 2), tiling.Axis(12, 4, 1), tiling.Axis(12, 6, 3)),
        (tiling.Axis(16, 8, 0), tiling.Axis(12, 100, 0), tiling.Axis(12, 12, 5)),
    ],
)
def test_blending_reproduces_a_function_the_windows_agree_on(axes):
    x = np.random.default_rng(0).standard_normal((2, 13 if axes[0].length == 13 else 16, 12, 12, 3))
    got = tiling.map_blended(offset_per_window(x, 2, [0.0]), axes, (1, 2, 2))
    np.testing.assert_allclose(got, upsample(x, 2), atol=1e-5)


def test_windows_have_one_size_and_cover_the_axis():
    for length, size, overlap in itertools.product([1, 7, 13, 61], [1, 3, 8, 64], [0, 1, 2]):
        if overlap >= min(size, length):
            continue
        axis = tiling.Axis(length, size, overlap)
        covered = np.zeros(length, bool)
        for s in axis.slices():
            assert s.stop - s.start == axis.window == min(size, length) and 0 <= s.start and s.stop <= length
            covered[s] = True
        assert covered.all()
    assert tiling.Axis(61, 8, 0).starts == [0, 8, 16, 24, 32, 40, 48, 53]  # the last moved back
    assert tiling.Axis(16, 8, 0).starts == [0, 8]  # LaVie's two chunks of a 16-frame clip
    assert tiling.Axis(16, 128, 16).slices() == [slice(0, 16)]  # a tile larger than the frame


def test_a_window_covering_the_clip_is_unchunked_processing():
    x = np.random.default_rng(1).standard_normal((1, 9, 8, 8, 3))
    calls = []

    def fn(slices):
        calls.append(slices)
        return np.sin(upsample(x[(slice(None), *slices)], 4))  # any function of the whole clip

    for axes in [
        (tiling.Axis(9, None), tiling.Axis(8, None), tiling.Axis(8, None)),
        (tiling.Axis(9, 9, 3), tiling.Axis(8, 8, 2), tiling.Axis(8, 100, 0)),
    ]:
        calls.clear()
        got = tiling.map_blended(fn, axes, (1, 4, 4))
        assert len(calls) == 1
        np.testing.assert_allclose(got, np.sin(upsample(x, 4)), atol=1e-6)


def max_step(video, axis):
    return np.abs(np.diff(video, axis=axis)).max()


def test_overlapping_chunks_have_no_seam_on_constant_motion():
    # A clip whose frame t is the constant t (steady motion: +1 per frame); windows are off by ±5.
    f = 29
    x = np.broadcast_to(np.arange(f, dtype=np.float64)[None, :, None, None, None], (1, f, 4, 4, 1))
    whole = (tiling.Axis(4, None), tiling.Axis(4, None))
    plain = tiling.map_blended(offset_per_window(x, 1, [0.0, 5.0]), (tiling.Axis(f, 8, 0), *whole))
    assert max_step(plain, 1) >= 5.9  # chunks without overlap: a jump of 1 + 5 at each boundary
    overlap = 4
    blended = tiling.map_blended(offset_per_window(x, 1, [0.0, 5.0]), (tiling.Axis(f, 8, overlap), *whole))
    # Across an overlap of o frames the offset changes linearly: 5/(o+1) per frame on top of the motion.
    assert max_step(blended, 1) <= 1 + 5 / (overlap + 1) + 1e-5
    assert np.diff(blended, axis=1).min() >= 1 - 5 / (overlap + 1) - 1e-5


def test_overlapping_tiles_have_no_seam_on_constant_motion():
    # A frame whose column c holds c (a horizontal ramp); tiles are off by ±3 and upsampled ×4.
    w = 24
    x = np.broadcast_to(np.arange(w, dtype=np.float64)[None, None, None, :, None], (1, 2, 8, w, 1))
    frames = tiling.Axis(2, None)
    plain = tiling.map_blended(
        offset_per_window(x, 4, [0.0, 3.0]), (frames, tiling.Axis(8, None), tiling.Axis(w, 8, 0)), (1, 4, 4)
    )
    assert max_step(plain, 3) >= 3.9  # a seam: 1 (the ramp) + 3 (the offset)
    overlap = 4  # low-res pixels = 16 output pixels
    blended = tiling.map_blended(
        offset_per_window(x, 4, [0.0, 3.0]),
        (frames, tiling.Axis(8, None), tiling.Axis(w, 8, overlap)),
        (1, 4, 4),
    )
    assert max_step(blended, 3) <= 1 + 3 / (4 * overlap + 1) + 1e-5
    assert max_step(blended, 2) <= 1e-6  # rows are untouched


def test_bad_axes():
    with pytest.raises(ValueError, match=r"chunk_frames overlap=8: expected an integer in 0..7"):
        tiling.Axis(16, 8, 8, "chunk_frames")
    with pytest.raises(ValueError, match=r"chunk_frames=0: expected a positive integer or None"):
        tiling.Axis(16, 0, 0, "chunk_frames")


# ---------------------------------------------------------------------------------------- pipeline
@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    folder = tiny_stages.build(tmp_path_factory.mktemp("vsr"), "vsr")
    return vsr.VSRPipeline.from_pretrained(folder)


@pytest.fixture(scope="module")
def low_res():
    return np.random.default_rng(0).integers(0, 256, (1, 4, 16, 16, 3), dtype=np.uint8)


def test_stage_defaults_are_the_released_ones(pipe):
    d = pipe.defaults
    assert d == dataclasses.replace(stage_defaults.vsr_stage(), steps=2, height=64, width=64)
    plan = d.plan("ddim", 50)
    assert np.asarray(plan.timesteps)[[0, 1, -1]].tolist() == [981, 961, 1]
    assert plan.prediction_type == "v_prediction"
    request = pipe.prepare(["a cat"], np.zeros((1, 4, 16, 16, 3), np.uint8))
    np.testing.assert_array_equal(request.negative_ids, pipe.tokenizer(["blur, worst quality"]))
    assert (request.noise_level, request.guidance, request.axes[0].size) == (50, 5.0, 8)


def test_low_res_noise_augmentation_at_level_50(pipe):
    import jax

    ab = schedule.alphas_cumprod(pipe.defaults.low_res_schedule_config())[50]
    assert abs(np.sqrt(ab) - 0.995411) < 1e-6 and abs(np.sqrt(1 - ab) - 0.095688) < 1e-6  # spec §4.3
    request = pipe.prepare(["a cat"], np.full((1, 2, 16, 16, 3), 0.5, np.float32))
    key = jax.random.key(7)
    noise = np.asarray(jax.random.normal(key, (1, 2, 16, 16, 3)))
    got = np.asarray(pipe.noise_low_res(request, key))
    np.testing.assert_allclose(got, np.sqrt(ab) * 0.5 + np.sqrt(1 - ab) * noise, atol=1e-6)


def test_chunks_and_tiles_run_one_program(pipe, low_res):
    pipe._compiled.clear()
    request = pipe.prepare(["a cat"], low_res, chunk_frames=2, chunk_overlap=1, tile_size=8, tile_overlap=4)
    assert request.num_windows == 3 * 3 * 3 and request.window_shape == (1, 2, 8, 8, 4)
    video = pipe.run(pipe.compile(request), request, seed=0)
    assert video.shape == (1, 4, 64, 64, 3) and video.dtype == np.uint8
    assert len(pipe._compiled) == 1


def test_whole_clip_chunk_and_tile_equal_unchunked(pipe, low_res):
    unchunked = pipe(["a cat"], low_res, chunk_frames=0, seed=2, output="float")
    assert unchunked.shape == (1, 4, 64, 64, 3)
    for options in [
        dict(chunk_frames=4, chunk_overlap=2),
        dict(chunk_frames=100),
        dict(chunk_frames=0, tile_size=16, tile_overlap=4),
        dict(chunk_frames=0, tile_size=(64, 32)),
    ]:
        np.testing.assert_array_equal(pipe(["a cat"], low_res, seed=2, output="float", **options), unchunked)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(noise_level=351), r"noise_level=351: expected an integer in 0..350"),
        (dict(noise_level=-1), r"noise_level=-1: expected an integer in 0..350"),
        (dict(noise_level=2.5), r"noise_level=2.5: expected an integer"),
        (dict(chunk_frames=2, chunk_overlap=2), r"chunk_frames overlap=2: expected an integer in 0..1"),
        (dict(tile_size=5), r"tile_size \(height\)=5: tiles must be multiples of 2"),
        (dict(tile_size=(8, 8, 8)), r"tile_size=\(8, 8, 8\): expected an int, a \(height, width\) pair"),
        (dict(steps=0), r"steps=0"),
    ],
)
def test_bad_arguments_fail_before_compiling(pipe, low_res, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pipe.prepare(["a cat"], low_res, **kwargs)


@pytest.mark.parametrize(
    "video,match",
    [
        (np.zeros((1, 4, 15, 16, 3), np.uint8), r"video height×width=15×16: both must be multiples of 2"),
        (np.zeros((3, 4, 16, 16, 3), np.uint8), r"video batch B=3: expected one video per prompt \(1\)"),
        (np.zeros((1, 4, 16, 16, 4), np.uint8), r"expected \(B, F, H, W, 3\)"),
    ],
)
def test_bad_video_fails_before_compiling(pipe, video, match):
    with pytest.raises(ValueError, match=match):
        pipe.prepare(["a cat"], video)
