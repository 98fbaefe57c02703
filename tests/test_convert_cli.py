"""`tools/convert_sd.py`: diffusers folders and original single files → model folders whose modules match
PyTorch; LaVie checkpoints with exactly the released key names; strict accounting; safety; bad input."""

import importlib.util
import json
import pathlib

import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.torch
import tiny_sd
import torch
from test_convert_original_sd import to_ldm_unet, to_ldm_vae

from lavie_jax import models
from lavie_jax.convert import state
from lavie_jax.pipelines import model_folder

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Every released parameter name and shape (LaVie commit 6ce851e), kept with the tests.
SPEC = json.loads((ROOT / "tests" / "data" / "lavie_state_dict_shapes.json").read_text())
_spec = importlib.util.spec_from_file_location("convert_sd", ROOT / "tools" / "convert_sd.py")
convert_sd = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(convert_sd)

# SD 1.x's block structure (4 levels, 2 layers) at tiny width, so LaVie's key names come out exactly.
SD_STRUCTURE_UNET = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    block_out_channels=(32, 64, 96, 96),
    layers_per_block=2,
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    cross_attention_dim=32,
    attention_head_dim=1,
    norm_num_groups=8,
)


@pytest.fixture(scope="module")
def sd(tmp_path_factory):
    root = tmp_path_factory.mktemp("sd")
    pipe = tiny_sd.build(root)
    pipe.save_pretrained(root / "diffusers")
    return root, pipe


def to_nhwc(x):
    return jnp.asarray(x.numpy().transpose(0, 2, 3, 1))


def check_matches_torch(folder, pipe):
    unet, vae, text = (
        models.load_unet(folder / "unet"),
        models.load_vae(folder / "vae"),
        models.load_text_encoder(folder / "text_encoder"),
    )
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((1, 4, 8, 8)).astype(np.float32))
    ctx = torch.from_numpy(rng.standard_normal((1, 7, 32)).astype(np.float32))
    ids = torch.from_numpy(rng.integers(0, 500, (2, 77)))
    with torch.no_grad():
        want_unet = pipe.unet(x, torch.tensor([400]), ctx).sample
        want_vae = pipe.vae.decode(x).sample
        want_text = pipe.text_encoder(ids).last_hidden_state.numpy()
    got_unet = unet(to_nhwc(x)[:, None], jnp.asarray([400]), jnp.asarray(ctx.numpy()))[:, 0]
    assert np.abs(np.asarray(got_unet) - want_unet.numpy().transpose(0, 2, 3, 1)).max() <= 1e-4
    assert np.abs(np.asarray(vae.decode(to_nhwc(x))) - want_vae.numpy().transpose(0, 2, 3, 1)).max() <= 1e-4
    assert np.abs(np.asarray(text(jnp.asarray(ids.numpy(), jnp.int32))) - want_text).max() <= 1e-4


def test_diffusers_folder(sd, tmp_path):
    root, pipe = sd
    assert convert_sd.main(["sd", str(root / "diffusers"), "--out", str(tmp_path / "m")]) == 0
    index = model_folder.check_folder(tmp_path / "m", stage="base")
    assert index["stage"] == "base"
    check_matches_torch(tmp_path / "m", pipe)
    unet = models.load_unet(tmp_path / "m" / "unet")
    temporal_out = [v for k, v in state.flat_params(unet).items() if ".attn_temp.to_out." in k]
    assert temporal_out and all(float(jnp.abs(v).max()) == 0 for v in temporal_out)


def test_single_original_file_gives_the_same_folder(sd, tmp_path):
    root, pipe = sd
    ckpt = {f"model.diffusion_model.{to_ldm_unet(k, {1})}": v for k, v in pipe.unet.state_dict().items()}
    ckpt |= {f"first_stage_model.{to_ldm_vae(k, 2)}": v for k, v in pipe.vae.state_dict().items()}
    ckpt |= {
        f"cond_stage_model.transformer.text_model.{k}": v for k, v in pipe.text_encoder.state_dict().items()
    }
    safetensors.torch.save_file(
        {k: v.contiguous() for k, v in ckpt.items()}, str(tmp_path / "sd.safetensors")
    )
    configs = []
    for name, cfg in (
        ("unet", dict(pipe.unet.config)),
        ("vae", dict(pipe.vae.config)),
        ("text", pipe.text_encoder.config.to_dict()),
    ):
        (tmp_path / f"{name}.json").write_text(
            json.dumps({k: v for k, v in cfg.items() if not k.startswith("_")}, default=list)
        )
        configs += [f"--{name}-config", str(tmp_path / f"{name}.json")]
    assert (
        convert_sd.main(
            ["sd", str(tmp_path / "sd.safetensors"), "--out", str(tmp_path / "m"), "--no-inflate", *configs]
        )
        == 0
    )
    check_matches_torch(tmp_path / "m", pipe)


def lavie_base_checkpoint(seed=0):
    """A LaVie base state dict at tiny width whose key NAMES are exactly the released ones."""
    torch.manual_seed(seed)
    from diffusers import UNet2DConditionModel

    sd = dict(tiny_sd.perturb(UNet2DConditionModel(**SD_STRUCTURE_UNET)).state_dict())
    for key in [k for k in sd if k.endswith("transformer_blocks.0.attn1.to_q.weight")]:
        prefix, c = key.removesuffix("attn1.to_q.weight"), sd[key].shape[0]
        for name in ("to_q", "to_k", "to_v", "to_out.0"):
            sd[f"{prefix}attn_temp.{name}.weight"] = 0.1 * torch.randn(c, c)
        sd[f"{prefix}attn_temp.to_out.0.bias"] = 0.1 * torch.randn(c)
        sd[f"{prefix}attn_temp.time_rel_pos_bias.relative_attention_bias.weight"] = torch.randn(32, 1)
        sd[f"{prefix}attn_temp.rotary_emb.freqs"] = 1.0 / 10000 ** (torch.arange(0, 32, 2).float() / 32)
        sd[f"{prefix}norm_temp.weight"], sd[f"{prefix}norm_temp.bias"] = (
            1 + 0.1 * torch.randn(c),
            0.1 * torch.randn(c),
        )
    return sd


def test_lavie_checkpoint_has_the_released_names():
    assert set(lavie_base_checkpoint()) == set(SPEC["base"])


@pytest.fixture(scope="module")
def sd_folder(sd, tmp_path_factory):
    root, _ = sd
    out = tmp_path_factory.mktemp("conv") / "sd_base"
    assert convert_sd.main(["sd", str(root / "diffusers"), "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("wrap", [False, True], ids=["plain", "ema"])
def test_lavie_base_pt_converts_and_round_trips(sd_folder, tmp_path, wrap):
    ckpt = lavie_base_checkpoint()
    torch.save({"ema": ckpt, "opt": {}} if wrap else ckpt, tmp_path / "lavie.pt")
    (tmp_path / "unet.json").write_text(json.dumps(SD_STRUCTURE_UNET))
    args = [
        "lavie",
        "--stage",
        "base",
        "--checkpoint",
        str(tmp_path / "lavie.pt"),
        "--sd",
        str(sd_folder),
        "--unet-config",
        str(tmp_path / "unet.json"),
        "--out",
        str(tmp_path / "m"),
    ]
    assert convert_sd.main(args) == 0
    assert json.loads((tmp_path / "m" / "model_index.json").read_text())["stage"] == "base"
    unet = models.load_unet(tmp_path / "m" / "unet")
    flat = state.flat_params(unet)
    np.testing.assert_array_equal(
        np.asarray(flat["down_blocks.0.attentions.0.transformer_blocks.0.attn_temp.to_q.kernel"]),
        ckpt["down_blocks.0.attentions.0.transformer_blocks.0.attn_temp.to_q.weight"].numpy().T,
    )


def test_lavie_errors(sd_folder, tmp_path, capsys):
    ckpt = lavie_base_checkpoint()
    (tmp_path / "unet.json").write_text(json.dumps(SD_STRUCTURE_UNET))
    common = ["--sd", str(sd_folder), "--unet-config", str(tmp_path / "unet.json")]
    broken = dict(ckpt)
    broken.pop("mid_block.attentions.0.transformer_blocks.0.attn_temp.to_v.weight")
    torch.save(broken, tmp_path / "broken.pt")
    assert (
        convert_sd.main(
            [
                "lavie",
                "--stage",
                "base",
                "--checkpoint",
                str(tmp_path / "broken.pt"),
                *common,
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "mid_block.attentions.0.transformer_blocks.0.attn_temp.to_v.kernel" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x.*"))  # nothing left behind
    interp = dict(ckpt, **{"conv_in.weight": torch.zeros(32, 8, 3, 3)})
    torch.save(interp, tmp_path / "interp.pt")
    assert (
        convert_sd.main(
            [
                "lavie",
                "--stage",
                "base",
                "--checkpoint",
                str(tmp_path / "interp.pt"),
                *common,
                "--out",
                str(tmp_path / "y"),
            ]
        )
        == 2
    )
    assert "looks like a 'interpolation' checkpoint" in capsys.readouterr().err

    class Evil:  # a pickle needing an arbitrary class is refused by weights_only=True
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"ema": ckpt, "evil": Evil()}, tmp_path / "evil.pt")
    assert (
        convert_sd.main(
            [
                "lavie",
                "--stage",
                "base",
                "--checkpoint",
                str(tmp_path / "evil.pt"),
                *common,
                "--out",
                str(tmp_path / "z"),
            ]
        )
        == 2
    )
    assert "refused" in capsys.readouterr().err
    (tmp_path / "trunc.pt").write_bytes((tmp_path / "interp.pt").read_bytes()[:1000])
    assert (
        convert_sd.main(
            [
                "lavie",
                "--stage",
                "base",
                "--checkpoint",
                str(tmp_path / "trunc.pt"),
                *common,
                "--out",
                str(tmp_path / "w"),
            ]
        )
        == 2
    )
    assert "refused" in capsys.readouterr().err


def test_bad_sources(sd, tmp_path, capsys):
    root, _ = sd
    assert convert_sd.main(["sd", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "unet").symlink_to(root / "diffusers" / "unet")
    assert convert_sd.main(["sd", str(partial), "--out", str(tmp_path / "o")]) == 2
    assert "has no vae/ component" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
