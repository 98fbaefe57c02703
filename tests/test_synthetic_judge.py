"""The synthetic-video judge reads back what the synthetic set renders: colour, direction, smoothness."""

import numpy as np
import pytest

from lavie_jax.data import synthetic, synthetic_judge


@pytest.mark.parametrize("size", [32, 128])
def test_judge_reads_rendered_clips(size):
    rng = np.random.default_rng(0)
    for i in range(24):
        spec = synthetic.random_spec(rng, moving=True)
        verdict = synthetic_judge.judge(synthetic.render_clip(spec, rng, 16, size, size))
        assert (verdict.color, verdict.direction) == (spec.color, spec.direction), (i, spec, verdict)
        assert verdict.detected_fraction == 1.0


def test_more_frames_of_the_same_motion_are_smoother():
    spec = synthetic.ShapeSpec("circle", "blue", "right", "quickly")
    base = synthetic.render_clip(spec, np.random.default_rng(1), 16, 32, 32)
    dense = synthetic.render_clip(spec, np.random.default_rng(1), 61, 32, 32)
    jump_base, jump_dense = synthetic_judge.judge(base).mean_jump, synthetic_judge.judge(dense).mean_jump
    assert jump_dense == pytest.approx(jump_base * 15 / 60, rel=0.15)


def test_static_blank_and_bad_input():
    spec = synthetic.ShapeSpec("square", "green")
    still = np.stack([synthetic.render_image(spec, np.random.default_rng(2), 32, 32)] * 8)
    assert synthetic_judge.judge(still).direction == "static"
    blank = np.full((4, 32, 32, 3), synthetic.BACKGROUND, np.uint8)
    assert synthetic_judge.judge(blank).direction == "undetected"
    with pytest.raises(ValueError, match="expected uint8 frames"):
        synthetic_judge.judge(np.zeros((4, 32, 32, 3), np.float32))
    assert synthetic_judge.expected_of("a red circle moving left, slowly") == ("red", "left")
    with pytest.raises(ValueError, match="names no colour"):
        synthetic_judge.expected_of("a teddy bear")
    prompts = synthetic_judge.prompt_list(5, seed=3)
    assert prompts == synthetic_judge.prompt_list(5, seed=3) and len(set(prompts)) > 1
