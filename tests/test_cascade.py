"""The cascade end to end on tiny random models of the three stages: every stage's uint8 video of the
expected shape, per-stage measurements, and every bad input caught before anything is loaded."""

import weakref

import numpy as np
import pytest
import tiny_stages

from lavie_jax.pipelines import cascade


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("cascade")
    return {stage: tiny_stages.build(root, stage, seed=i) for i, stage in enumerate(cascade.STAGES)}


def test_three_stages_make_16_61_and_x4_61_frames(folders):
    pipe = cascade.CascadePipeline(**folders)
    request = pipe.prepare(["a cat"], seed=1)
    h = w = 16
    assert request.shapes == {
        "base": (1, 16, h, w, 3),
        "interpolation": (1, 61, h, w, 3),
        "vsr": (1, 61, 4 * h, 4 * w, 3),
    }
    results = list(pipe.run_stages(request))
    assert [r.stage for r in results] == ["base", "interpolation", "vsr"]
    for r in results:
        assert r.video.dtype == np.uint8 and r.video.shape == request.shapes[r.stage]
        assert r.compile_s > 0 and r.sample_s > 0 and r.peak_rss_gb > 0
    base, interp, _ = (r.video for r in results)
    assert [r.fps for r in results] == [8.0, 24.0, 24.0]
    assert np.abs(base.astype(int) - interp[:, ::4].astype(int)).mean() < 128  # a video, not a crash


def test_stage_subsets_and_options_and_each_stage_released(folders, monkeypatch):
    alive = []  # weak references to every stage pipeline loaded so far

    def tracking(cls):
        original = cls.from_pretrained

        def load(folder, **kwargs):
            assert all(ref() is None for ref in alive), "the previous stage was not released"
            pipe = original(folder, **kwargs)
            alive.append(weakref.ref(pipe))
            return pipe

        return load

    for cls in cascade.PIPELINES.values():
        monkeypatch.setattr(cls, "from_pretrained", tracking(cls))
    pipe = cascade.CascadePipeline(**folders)
    videos = pipe(
        ["a cat"],
        stages="base,vsr",
        base=dict(num_frames=3, steps=1),
        vsr=dict(steps=1, chunk_frames=2, chunk_overlap=1, tile_size=8, tile_overlap=2),
    )
    assert sorted(videos) == ["base", "vsr"]
    assert videos["base"].shape == (1, 3, 16, 16, 3) and videos["vsr"].shape == (1, 3, 64, 64, 3)
    assert len(alive) == 2 and all(ref() is None for ref in alive)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(stages="base,interp,vsr", drop="vsr"), r"missing stage folder\(s\) for \['vsr'\]"),
        (dict(stages="interp,vsr"), r"stages='interp,vsr': expected a comma-separated list in cascade order"),
        (dict(stages="base,upscale"), r"unknown stage\(s\) \['upscale'\]"),
        (dict(stages="base,vsr,interp"), r"expected a comma-separated list in cascade order"),
        (dict(base=dict(num_frames=1)), r"video frames N=1: expected ≥ 2 base frames"),
        (dict(base=dict(height=18)), r"height×width=18×16: both must be multiples of 4"),
        (dict(vsr=dict(noise_level=400)), r"noise_level=400: expected an integer in 0..350"),
        (dict(vsr=dict(tile_size=5)), r"tile_size \(height\)=5: tiles must be multiples of 2"),
        (
            dict(vsr=dict(chunk_frames=4, chunk_overlap=4)),
            r"chunk_frames overlap=4: expected an integer in 0..3",
        ),
        (dict(interpolation=dict(steps=0)), r"steps=0: expected a positive integer"),
        (dict(vsr=dict(num_frames=3)), r"vsr options: unknown \['num_frames'\]"),
        (dict(seeds=dict(upscale=1)), r"seeds: unknown stage\(s\) \['upscale'\]"),
    ],
)
def test_bad_inputs_fail_before_loading(folders, kwargs, match, monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("a stage was loaded before every argument was checked")

    for pipeline in cascade.PIPELINES.values():
        monkeypatch.setattr(pipeline, "from_pretrained", no_loading)
    given = dict(folders)
    given.pop(kwargs.pop("drop", None), None)
    with pytest.raises(ValueError, match=match):
        cascade.CascadePipeline(**given).prepare(["a cat"], **kwargs)


def test_a_folder_of_stage_folders(folders, tmp_path):
    root = folders["base"].parent
    assert cascade.CascadePipeline.from_pretrained(root).folders == folders
    with pytest.raises(ValueError, match="does not exist"):
        cascade.CascadePipeline.from_pretrained(tmp_path / "nope")
    with pytest.raises(ValueError, match=r"missing stage folder\(s\) for \['base', 'interpolation', 'vsr'\]"):
        cascade.CascadePipeline.from_pretrained(tmp_path).prepare(["a cat"])


def test_a_folder_of_the_wrong_stage(folders):
    pipe = cascade.CascadePipeline(folders["base"], folders["interpolation"], folders["base"])
    with pytest.raises(ValueError, match=r"holds stage 'base', expected 'vsr'"):
        pipe.prepare(["a cat"])
