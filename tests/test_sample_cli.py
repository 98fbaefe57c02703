"""`python -m lavie_jax.sample`: files of the requested size and frame count, safe names, bad arguments."""

import subprocess
import sys

import av
import numpy as np
import pytest
import tiny_sd
import tiny_stages
from PIL import Image

from lavie_jax import sample


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    return tiny_sd.to_model_folder(tiny_sd.build(root), root / "model", root / "vocab")


def frames_of(path):
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_writes_videos_inside_out(model, tmp_path, capsys):
    out = tmp_path / "out"
    small = ["--model", str(model), "--frames", "3", "--height", "16", "--width", "24", "--steps", "2"]
    code = sample.main([*small, "--prompt", "../../etc/x", "--prompt", "a red cat", "--out", str(out)])
    assert code == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == ["a_red_cat.gif", "a_red_cat.mp4", "a_red_cat.png", "etcx.gif", "etcx.mp4", "etcx.png"]
    assert all(p.resolve().parent == out.resolve() for p in out.iterdir())
    video = frames_of(out / "a_red_cat.mp4")
    assert video.shape == (3, 16, 24, 3)
    gif = Image.open(out / "a_red_cat.gif")
    assert gif.n_frames == 3 and gif.size == (24, 16)
    err = capsys.readouterr().err
    assert "compile:" in err and "sampling:" in err
    # A second run never overwrites: new names.
    sample.main([*small, "--prompt", "a red cat", "--out", str(out)])
    assert (out / "a_red_cat-2.mp4").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--steps", "0"], "--steps must be a positive integer"),
        (["--guidance", "-2"], "--guidance must be ≥ 0"),
        (["--frames", "0"], "--frames must be a positive integer"),
        (["--height", "18"], "must be multiples of 4"),
        (["--sampler", "heun"], "invalid choice: 'heun'"),
    ],
)
def test_bad_arguments(model, tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        sample.main(["--model", str(model), "--prompt", "x", "--out", str(tmp_path), *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_prompt_and_model(tmp_path, capsys):
    with pytest.raises(SystemExit):
        sample.main(["--model", str(tmp_path)])
    assert "no prompt given" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sample.main(["--model", str(tmp_path / "nope"), "--prompt", "x"])
    assert "does not exist" in capsys.readouterr().err


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    root = tmp_path_factory.mktemp("stages")
    return {
        s: str(tiny_stages.build(root, s, seed=i)) for i, s in enumerate(("base", "interpolation", "vsr"))
    }


def cascade_args(stages, out, *extra):
    return [
        "--cascade",
        "--model",
        stages["base"],
        "--interp-model",
        stages["interpolation"],
        "--vsr-model",
        stages["vsr"],
        "--prompt",
        "a red cat",
        "--frames",
        "3",
        "--steps",
        "1",
        "--interp-steps",
        "1",
        "--vsr-steps",
        "1",
        "--out",
        str(out),
        *extra,
    ]


def test_cascade_writes_every_stage(stages, tmp_path, capsys):
    out = tmp_path / "out"
    assert sample.main(cascade_args(stages, out, "--vsr-chunk-frames", "4", "--vsr-chunk-overlap", "1")) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == [
        f"a_red_cat_{stage}{ext}"
        for stage, exts in (("base", ".gif .mp4 .png"), ("interpolation", ".gif .mp4"), ("vsr", ".gif .mp4"))
        for ext in exts.split()
    ]
    assert frames_of(out / "a_red_cat_base.mp4").shape == (3, 16, 16, 3)
    assert frames_of(out / "a_red_cat_interpolation.mp4").shape == (9, 16, 16, 3)
    assert frames_of(out / "a_red_cat_vsr.mp4").shape == (9, 64, 64, 3)
    err = capsys.readouterr().err
    for stage in ("base", "interpolation", "vsr"):
        assert f"{stage}: load " in err
    assert err.count("peak RSS") == 3 and err.count("compile ") == 3


@pytest.mark.parametrize(
    "args,message",
    [
        (["--vsr-noise-level", "400"], "noise_level=400: expected an integer in 0..350"),
        (["--stages", "interp,vsr"], "expected a comma-separated list in cascade order starting with base"),
        (["--vsr-tile", "5"], "tile_size (height)=5: tiles must be multiples of 2"),
        (["--interp-steps", "0"], "--interp-steps must be a positive integer"),
        (["--frames", "1"], "video frames N=1: expected ≥ 2 base frames"),
    ],
)
def test_cascade_bad_arguments(stages, tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        sample.main(cascade_args(stages, tmp_path, *args))
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_cascade_missing_folder_and_flags_without_cascade(stages, tmp_path, capsys):
    args = cascade_args(stages, tmp_path)
    without_vsr = args[: args.index("--vsr-model")] + args[args.index("--vsr-model") + 2 :]
    with pytest.raises(SystemExit):
        sample.main(without_vsr)
    assert "missing stage folder(s) for ['vsr']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sample.main(["--model", stages["base"], "--prompt", "x", "--vsr-noise-level", "20"])
    assert "--vsr-noise-level only apply with --cascade" in capsys.readouterr().err


def test_help_runs_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "lavie_jax.sample", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "--negative-prompt" in result.stdout and "examples:" in result.stdout
    assert "--interp-model" in result.stdout and "--vsr-chunk-overlap" in result.stdout
