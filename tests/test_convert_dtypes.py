"""Storage dtypes of `tools/convert_sd.py`, for every subcommand (sd, upscaler, lavie):

* float16 / bfloat16 sources convert to float32 folders by default, equal bit for bit to converting the
  float32 upcast of the same source (the upcast is exact, so nothing may be lost on the way);
* ``--dtype bfloat16`` writes bfloat16 tensors (read from the safetensors header) equal to the float32
  folder's tensors rounded to bfloat16, in a folder about half the size that `lavie_jax.models` loads
  and whose modules stay close to the float32 folder's.
"""

import json
import pathlib
import struct

import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import safetensors.numpy
import tiny_sd
import torch
from test_convert_cli import SD_STRUCTURE_UNET, convert_sd, lavie_base_checkpoint
from test_convert_upscaler import upscaler_pipe  # noqa: F401  (a fixture: the tiny ×4 upscaler pipeline)

from lavie_jax import models

HALF = {"float16": torch.float16, "bfloat16": torch.bfloat16}
COMPONENTS = ("unet", "vae", "text_encoder")


def header_dtypes(path: pathlib.Path) -> set[str]:
    """The dtypes a safetensors file declares, read from its JSON header (8-byte length + JSON)."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    return {v["dtype"] for k, v in header.items() if k != "__metadata__"}


def weights(folder: pathlib.Path, name: str) -> dict[str, np.ndarray]:
    return safetensors.numpy.load_file(str(folder / name / "model.safetensors"))


def weight_bytes(folder: pathlib.Path) -> int:
    return sum((folder / name / "model.safetensors").stat().st_size for name in COMPONENTS)


def convert(*args) -> pathlib.Path:
    assert convert_sd.main([str(a) for a in args]) == 0
    return pathlib.Path(args[args.index("--out") + 1])


def assert_same_folder(got: pathlib.Path, want: pathlib.Path) -> None:
    """Every component stored in float32, every tensor bit-identical."""
    for name in COMPONENTS:
        assert header_dtypes(got / name / "model.safetensors") == {"F32"}, name
        a, b = weights(got, name), weights(want, name)
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}: {key}")


def assert_bfloat16_of(got: pathlib.Path, want: pathlib.Path) -> None:
    """`got` stores every tensor of the float32 folder `want` rounded to bfloat16, in about half the bytes."""
    for name in COMPONENTS:
        assert header_dtypes(got / name / "model.safetensors") == {"BF16"}, name
        a, b = weights(got, name), weights(want, name)
        assert a.keys() == b.keys()
        for key in a:
            assert a[key].dtype == ml_dtypes.bfloat16
            np.testing.assert_array_equal(a[key], b[key].astype(ml_dtypes.bfloat16), err_msg=f"{name}: {key}")
    assert 0.49 < weight_bytes(got) / weight_bytes(want) < 0.52


def save_half_and_upcast(pipe, root: pathlib.Path, half: str) -> tuple[pathlib.Path, pathlib.Path]:
    """The pipeline saved in `half`, and saved again after the exact upcast back to float32."""
    pipe.to(HALF[half]).save_pretrained(root / half)
    pipe.to(torch.float32).save_pretrained(root / f"{half}_upcast")
    return root / half, root / f"{half}_upcast"


@pytest.fixture(scope="module")
def sd_sources(tmp_path_factory):
    """The tiny SD pipeline as a float32 diffusers folder, and as half / upcast pairs."""
    root = tmp_path_factory.mktemp("sd_dtypes")
    pipe = tiny_sd.build(root)
    pipe.save_pretrained(root / "float32")
    return root / "float32", {half: save_half_and_upcast(pipe, root, half) for half in HALF}


@pytest.fixture(scope="module")
def sd_folder(sd_sources, tmp_path_factory):
    """The float32 conversion of the float32 SD folder (the reference, and --sd for the lavie stage)."""
    return convert("sd", sd_sources[0], "--out", tmp_path_factory.mktemp("conv") / "sd")


@pytest.mark.parametrize("half", HALF)
def test_half_sd_folder_converts_to_float32_exactly(sd_sources, tmp_path, half):
    src, upcast = sd_sources[1][half]
    source_dtype = {"float16": "F16", "bfloat16": "BF16"}[half]
    assert header_dtypes(src / "unet" / "diffusion_pytorch_model.safetensors") == {source_dtype}
    got = convert("sd", src, "--out", tmp_path / "half")
    want = convert("sd", upcast, "--out", tmp_path / "upcast")
    assert_same_folder(got, want)  # bit-identical weights: the loaded modules are the same functions


@pytest.mark.parametrize("half", HALF)
def test_half_upscaler_converts_to_float32_exactly(upscaler_pipe, tmp_path, half):  # noqa: F811
    _, pipe = upscaler_pipe
    src, upcast = save_half_and_upcast(pipe, tmp_path, half)
    got = convert("upscaler", src, "--out", tmp_path / "half")
    assert_same_folder(got, convert("upscaler", upcast, "--out", tmp_path / "upcast"))


@pytest.fixture(scope="module")
def lavie_unet_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "unet.json"
    path.write_text(json.dumps(SD_STRUCTURE_UNET))
    return path


def convert_lavie(checkpoint, sd, config, out, *extra) -> pathlib.Path:
    args = ["lavie", "--stage", "base", "--checkpoint", checkpoint, "--sd", sd, "--unet-config", config]
    return convert(*args, "--out", out, *extra)


@pytest.mark.parametrize("half", HALF)
def test_half_lavie_checkpoint_converts_to_float32_exactly(sd_folder, lavie_unet_config, tmp_path, half):
    # A whole-model cast, as `model.half()` / `.to(bfloat16)` saves it: the RoPE buffers too.
    ckpt = {k: v.to(HALF[half]) for k, v in lavie_base_checkpoint().items()}
    torch.save({"ema": ckpt}, tmp_path / "half.pt")
    torch.save({"ema": {k: v.float() for k, v in ckpt.items()}}, tmp_path / "upcast.pt")
    got = convert_lavie(tmp_path / "half.pt", sd_folder, lavie_unet_config, tmp_path / "half")
    want = convert_lavie(tmp_path / "upcast.pt", sd_folder, lavie_unet_config, tmp_path / "upcast")
    assert_same_folder(got, want)


def test_bfloat16_sd_folder_loads_and_stays_close(sd_sources, sd_folder, tmp_path):
    got = convert("sd", sd_sources[0], "--out", tmp_path / "bf16", "--dtype", "bfloat16")
    assert_bfloat16_of(got, sd_folder)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((1, 2, 8, 8, 4)), jnp.float32)
    ctx = jnp.asarray(rng.standard_normal((1, 7, 32)), jnp.float32)
    ids = jnp.asarray(rng.integers(0, 500, (2, 77)), jnp.int32)
    for load, run in (
        (models.load_unet, lambda m: m(x, jnp.asarray([400]), ctx)),
        (models.load_vae, lambda m: m.decode(x[:, 0])),
        (models.load_text_encoder, lambda m: m(ids)),
    ):
        name = {"load_unet": "unet", "load_vae": "vae", "load_text_encoder": "text_encoder"}[load.__name__]
        want = np.asarray(run(load(sd_folder / name)))
        got_out = np.asarray(run(load(got / name)))
        assert got_out.dtype == np.float32  # loaded (and run) in float32
        # bfloat16 keeps 8 mantissa bits: weights move by ≤ 2^-9 relative, outputs by about as much.
        err = np.abs(got_out - want).max() / np.abs(want).max()
        assert 0 < err <= 2e-2, f"{name}: relative error {err:.2e}"


def test_bfloat16_lavie_and_upscaler(
    sd_sources,
    sd_folder,
    lavie_unet_config,
    upscaler_pipe,  # noqa: F811
    tmp_path,
):
    torch.save(lavie_base_checkpoint(), tmp_path / "lavie.pt")
    want = convert_lavie(tmp_path / "lavie.pt", sd_folder, lavie_unet_config, tmp_path / "f32")
    got = convert_lavie(
        tmp_path / "lavie.pt", sd_folder, lavie_unet_config, tmp_path / "bf16", "--dtype", "bfloat16"
    )
    assert_bfloat16_of(got, want)
    assert models.load_unet(got / "unet").config.temporal == "rope_relpos"
    # A bfloat16 --sd folder still gives a float32 folder by default (its VAE and text encoder upcast).
    sd_bf16 = convert("sd", sd_sources[0], "--out", tmp_path / "sd_bf16", "--dtype", "bfloat16")
    mixed = convert_lavie(tmp_path / "lavie.pt", sd_bf16, lavie_unet_config, tmp_path / "mixed")
    for name in COMPONENTS:
        assert header_dtypes(mixed / name / "model.safetensors") == {"F32"}
    np.testing.assert_array_equal(
        weights(mixed, "vae")["decoder.conv_out.kernel"],
        weights(sd_bf16, "vae")["decoder.conv_out.kernel"].astype(np.float32),
    )

    src, _ = upscaler_pipe
    want = convert("upscaler", src, "--out", tmp_path / "x4_f32")
    assert_bfloat16_of(convert("upscaler", src, "--out", tmp_path / "x4_bf16", "--dtype", "bfloat16"), want)
