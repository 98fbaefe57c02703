"""`python -m lavie_jax.sample`: files of the requested size and frame count, safe names, bad arguments."""

import subprocess
import sys

import av
import numpy as np
import pytest
import tiny_sd
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
    code = sample.main(
        [
            "--model",
            str(model),
            "--prompt",
            "../../etc/x",
            "--prompt",
            "a red cat",
            "--frames",
            "3",
            "--height",
            "16",
            "--width",
            "24",
            "--steps",
            "2",
            "--out",
            str(out),
        ]
    )
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
    sample.main(
        [
            "--model",
            str(model),
            "--prompt",
            "a red cat",
            "--frames",
            "3",
            "--height",
            "16",
            "--width",
            "24",
            "--steps",
            "2",
            "--out",
            str(out),
        ]
    )
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


def test_help_runs_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "lavie_jax.sample", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "--negative-prompt" in result.stdout and "examples:" in result.stdout
