"""Converting LaVie's interpolation and VSR checkpoints: the released name→shape lists map 1:1 onto our
presets at full size, and tiny checkpoints with exactly the released names convert strictly through
``tools/convert_sd.py lavie --stage interpolation|vsr``."""

import json

import lavie_weights
import numpy as np
import pytest
import tiny_sd
import torch
from diffusers import UNet2DConditionModel
from flax import nnx
from test_convert_cli import SD_STRUCTURE_UNET, SPEC, convert_sd, sd, sd_folder  # noqa: F401 (fixtures)
from test_convert_upscaler import UPSCALER_STRUCTURE, upscaler_folder, upscaler_pipe  # noqa: F401

from lavie_jax import models
from lavie_jax.convert import state
from lavie_jax.convert import unet as convert_unet
from lavie_jax.models import unet3d


# --------------------------------------------------------------------------- full-size names and shapes
@pytest.mark.parametrize(
    "stage, preset",
    [("base", unet3d.lavie_base), ("interp", unet3d.lavie_interpolation), ("vsr", unet3d.lavie_vsr)],
)
def test_released_names_and_shapes_map_onto_the_presets(stage, preset):
    """Every released tensor is used exactly once (RoPE buffers checked and dropped) and fills every
    parameter of our preset with the right shape — without allocating the full-size weights."""
    released = SPEC[stage]
    source = {
        name: lavie_weights.ROPE_FREQS.numpy()
        if name.endswith("rotary_emb.freqs")
        else np.broadcast_to(np.float32(0), shape)  # zero-stride: shapes only
        for name, shape in released.items()
    }
    flat = convert_unet.unet_flat_from_torch(source)
    freqs = [n for n in released if n.endswith("rotary_emb.freqs")]
    assert len(flat) + len(freqs) == len(released)
    model = nnx.eval_shape(lambda: unet3d.UNet3D(preset(), rngs=nnx.Rngs(0)))
    expected = {k: v.shape for k, v in state.flat_params(model).items()}
    state.check_complete(expected, flat, f"lavie_{stage}")
    n_params = sum(int(np.prod(s)) for s in expected.values())
    assert n_params == {"base": 909_124_100, "interp": 909_131_524, "vsr": 691_036_420}[stage]


# --------------------------------------------------------------------------- tiny checkpoints
def interpolation_checkpoint():
    torch.manual_seed(0)
    sd2d = tiny_sd.perturb(UNet2DConditionModel(**{**SD_STRUCTURE_UNET, "in_channels": 8}))
    return lavie_weights.with_interpolation_temporal(dict(sd2d.state_dict()))


def run_lavie(stage, ckpt, sd_dir, unet_cfg, tmp_path, name="m"):
    torch.save({"ema": ckpt}, tmp_path / f"{name}.pt")
    (tmp_path / f"{name}.json").write_text(json.dumps(unet_cfg, default=list))
    args = ["lavie", "--stage", stage, "--checkpoint", str(tmp_path / f"{name}.pt"), "--sd", str(sd_dir)]
    args += ["--unet-config", str(tmp_path / f"{name}.json"), "--out", str(tmp_path / name)]
    return convert_sd.main(args)


def assert_unet_equals_checkpoint(folder, ckpt):
    unet = models.load_unet(folder / "unet")
    got = state.flat_params(unet)
    want = convert_unet.unet_flat_from_torch(ckpt)
    assert set(got) == set(want)
    for name, value in want.items():
        np.testing.assert_array_equal(np.asarray(got[name]), value, err_msg=name)
    return unet


def test_interpolation_checkpoint_converts(sd_folder, tmp_path):  # noqa: F811
    ckpt = interpolation_checkpoint()
    assert set(ckpt) == set(SPEC["interp"])
    unet_cfg = {**SD_STRUCTURE_UNET, "in_channels": 8}
    assert run_lavie("interpolation", ckpt, sd_folder, unet_cfg, tmp_path) == 0
    index = json.loads((tmp_path / "m" / "model_index.json").read_text())
    assert index["stage"] == "interpolation"
    unet = assert_unet_equals_checkpoint(tmp_path / "m", ckpt)
    c = unet.config
    assert (c.in_channels, c.temporal, c.temporal_after_ff, c.sparse_causal) == (8, "plain", True, True)


def vsr_checkpoint():
    torch.manual_seed(1)
    sd2d = tiny_sd.perturb(UNet2DConditionModel(**UPSCALER_STRUCTURE))
    return lavie_weights.with_vsr_temporal(
        dict(sd2d.state_dict()), UPSCALER_STRUCTURE["block_out_channels"], heads=1
    )


def test_vsr_checkpoint_converts(upscaler_folder, tmp_path):  # noqa: F811
    ckpt = vsr_checkpoint()
    assert set(ckpt) == set(SPEC["vsr"])
    assert run_lavie("vsr", ckpt, upscaler_folder, UPSCALER_STRUCTURE, tmp_path) == 0
    unet = assert_unet_equals_checkpoint(tmp_path / "m", ckpt)
    c = unet.config
    assert (c.low_res_channels, c.max_noise_level, c.temporal, c.temporal_modules) == (
        3,
        350,
        "conv_rope_relpos",
        True,
    )
    assert json.loads((tmp_path / "m" / "model_index.json").read_text())["stage"] == "vsr"


def test_stage_errors(sd_folder, upscaler_folder, tmp_path, capsys):  # noqa: F811
    interp = interpolation_checkpoint()
    unet_cfg = {**SD_STRUCTURE_UNET, "in_channels": 8}
    assert run_lavie("vsr", interp, upscaler_folder, unet_cfg, tmp_path, "a") == 2
    assert "looks like a 'interpolation' checkpoint" in capsys.readouterr().err
    assert run_lavie("interpolation", interp, upscaler_folder, unet_cfg, tmp_path, "b") == 2
    assert "from a conversion of Stable Diffusion 1.x ('sd' command)" in capsys.readouterr().err
    vsr = vsr_checkpoint()
    assert run_lavie("vsr", vsr, sd_folder, UPSCALER_STRUCTURE, tmp_path, "c") == 2
    assert "from a conversion of the upscaler ('upscaler' command)" in capsys.readouterr().err
    bad = {**UPSCALER_STRUCTURE, "mid_temporal": False}
    assert run_lavie("vsr", vsr, upscaler_folder, bad, tmp_path, "d") == 2
    assert "mid_temporal=False is not supported; expected True" in capsys.readouterr().err
    broken = dict(vsr)
    broken.pop("mid_temporal_block.shift_conv.bias")
    assert run_lavie("vsr", broken, upscaler_folder, UPSCALER_STRUCTURE, tmp_path, "e") == 2
    assert "mid_temporal_block.shift_conv.bias" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in "abcde")
