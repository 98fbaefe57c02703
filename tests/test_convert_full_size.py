"""Converting full-size models fits in memory: `tools/convert_sd.py` runs in a subprocess whose peak RSS
(its own VmHWM, `run_measured`) stays within 1.5× the float32 size of the model it writes — one copy of
the model, not a PyTorch copy plus converted copies — and whose anonymous memory (what is not the
memory-mapped source's page-cache pages, which the kernel can take back) within 0.25× of it. The model
written is the yardstick because an inflation writes more than it reads: the source plus fresh temporal
layers, which exist nowhere else (`convert.unet.fresh_temporal` makes them a chunk at a time as they are
written, so they too stay out of the anonymous memory). Four conversions (slow):

* ``lavie --stage base``: a released LaVie base checkpoint (909M parameters, a 3.6 GB float32 .pt);
* ``sd`` of a diffusers folder: Stable Diffusion 1.4 (UNet 860M, VAE 84M, CLIP ViT-L text encoder 123M
  parameters: 4.3 GB of .safetensors), its UNet inflated to LaVie's base UNet (+50M fresh temporal
  parameters: 4.5 GB written);
* ``sd`` of one original-layout .safetensors (``model.diffusion_model.*``, ``first_stage_model.*``,
  ``cond_stage_model.transformer.text_model.*``, the VAE's attention as 1×1 convs) of the same weights;
* ``upscaler``: the SD ×4 upscaler (UNet 473M, ×4 VAE 55M, OpenCLIP-H text encoder 340M: 3.5 GB), its
  UNet inflated to LaVie's VSR UNet (+218M fresh temporal parameters: 4.3 GB written).

The sources hold random values in the real shapes — those of the diffusers / transformers modules built
from the released configs on the ``meta`` device (no memory), or of the released LaVie state dict — and
are written tensor by tensor, never the whole model in the test process. Each converted folder is checked
to hold sample tensors unchanged, zero temporal output projections, and a UNet exactly the size of the
released LaVie one of its stage. Measured on the 2-core development machine (a training job running
alongside, everything under ``nice -n 19``; ratios to the model written):

    conversion                  source   written  peak RSS       anonymous      time
    lavie --stage base          3.64 GB  3.65 GB  4.10 GB 1.12×  0.39 GB 0.11×  25 s
    sd, diffusers folder        4.26 GB  4.46 GB  4.74 GB 1.06×  0.55 GB 0.12×  34 s
    sd, original single file    4.26 GB  4.46 GB  4.77 GB 1.07×  0.56 GB 0.13×  38 s
    upscaler                    3.48 GB  4.35 GB  4.06 GB 0.93×  0.72 GB 0.17×  78 s

Before the converter memory-mapped safetensors sources and stopped building a whole random 3-D UNet to
inflate from, the three ``sd``/``upscaler`` conversions peaked at 8.5, 8.7 and 7.0 GB (1.9×, 2.0×, 1.6×;
8.4, 8.4 and 6.9 GB of it anonymous); before it streamed its output and memory-mapped .pt checkpoints,
the LaVie one at 7.8 GB (2.15×). (The 4.2 GB once recorded for the LaVie one was ``os.wait4``'s
``ru_maxrss``, which includes the test process's own high-water mark; see `_REPORT_PEAK`.)

    pytest -m slow -s tests/test_convert_full_size.py      # prints the peak RSS and the time

Needs ~14 GB of free disk under the temporary folder (sources and converted folders, deleted as the
tests go) and about five minutes. The one fast test checks that the fresh temporal layers made a chunk at
a time equal those of a freshly built module.
"""

import contextlib
import json
import math
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
import safetensors
import tiny_sd
import torch
import transformers
from diffusers import AutoencoderKL, UNet2DConditionModel
from flax import nnx
from test_convert_cli import ROOT, SPEC
from test_convert_original_sd import to_ldm_unet, to_ldm_vae

from lavie_jax.convert import original_sd, sources, state, streaming, to_folder
from lavie_jax.convert import unet as convert_unet
from lavie_jax.models import clip_text, tokenizer, unet3d, vae
from lavie_jax.pipelines import model_folder

PEAK_BOUND = 1.5  # × the float32 size of the converted model
ANON_BOUND = 0.25  # × the same: the interpreter, JAX, a chunk of fresh temporal layers, a tensor
ROPE_FREQS = 1.0 / 10000 ** (torch.arange(0, 32, 2).float() / 32)

# The released components' config.json (constructor fields): CompVis/stable-diffusion-v1-4 …
SD14 = {
    "unet": dict(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        block_out_channels=[320, 640, 1280, 1280],
        layers_per_block=2,
        down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
        up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
        attention_head_dim=8,
        cross_attention_dim=768,
        norm_num_groups=32,
        norm_eps=1e-5,
        flip_sin_to_cos=True,
        freq_shift=0,
        downsample_padding=1,
        mid_block_scale_factor=1,
        act_fn="silu",
    ),
    "vae": dict(
        sample_size=512,
        in_channels=3,
        out_channels=3,
        block_out_channels=[128, 256, 512, 512],
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        latent_channels=4,
        layers_per_block=2,
        norm_num_groups=32,
        act_fn="silu",
    ),
    "text_encoder": dict(
        vocab_size=49408,
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        max_position_embeddings=77,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        projection_dim=768,
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=1,
    ),
}
# … and stabilityai/stable-diffusion-x4-upscaler (its text encoder is OpenCLIP ViT-H's text tower).
X4 = {
    "unet": dict(
        sample_size=128,
        in_channels=7,
        out_channels=4,
        block_out_channels=[256, 512, 512, 1024],
        layers_per_block=2,
        down_block_types=["DownBlock2D"] + ["CrossAttnDownBlock2D"] * 3,
        up_block_types=["CrossAttnUpBlock2D"] * 3 + ["UpBlock2D"],
        only_cross_attention=[True, True, True, False],
        use_linear_projection=True,
        num_class_embeds=1000,
        attention_head_dim=8,
        cross_attention_dim=1024,
        norm_num_groups=32,
        norm_eps=1e-5,
        flip_sin_to_cos=True,
        freq_shift=0,
        downsample_padding=1,
        mid_block_scale_factor=1,
        act_fn="silu",
    ),
    "vae": dict(
        sample_size=256,
        in_channels=3,
        out_channels=3,
        block_out_channels=[128, 256, 512],
        down_block_types=["DownEncoderBlock2D"] * 3,
        up_block_types=["UpDecoderBlock2D"] * 3,
        latent_channels=4,
        layers_per_block=2,
        norm_num_groups=32,
        act_fn="silu",
        scaling_factor=0.08333,
    ),
    "text_encoder": dict(
        vocab_size=49408,
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=23,
        num_attention_heads=16,
        max_position_embeddings=77,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        projection_dim=512,
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=1,
    ),
}
# Tensors checked to arrive unchanged (in our layout): {component: {our name: the source's name}}.
SD14_COPIED = {
    "unet": {
        "conv_in.kernel": "conv_in.weight",
        "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.kernel": (
            "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight"
        ),
        "up_blocks.3.resnets.0.conv_shortcut.kernel": "up_blocks.3.resnets.0.conv_shortcut.weight",
    },
    "vae": {
        "decoder.mid_block.attentions.0.to_q.kernel": "decoder.mid_block.attentions.0.to_q.weight",
        "encoder.down_blocks.1.resnets.0.conv_shortcut.kernel": (
            "encoder.down_blocks.1.resnets.0.conv_shortcut.weight"
        ),
        "decoder.up_blocks.0.resnets.2.conv2.kernel": "decoder.up_blocks.0.resnets.2.conv2.weight",
    },
    "text_encoder": {
        "embeddings.token_embedding.embedding": "text_model.embeddings.token_embedding.weight",
        "encoder.layers.11.mlp.fc1.kernel": "text_model.encoder.layers.11.mlp.fc1.weight",
    },
}
X4_COPIED = {
    "unet": {
        "conv_in.kernel": "conv_in.weight",
        "class_embedding.embedding": "class_embedding.weight",
        "down_blocks.1.attentions.0.proj_in.kernel": "down_blocks.1.attentions.0.proj_in.weight",
        "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_k.kernel": (
            "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_k.weight"
        ),
    },
    "vae": SD14_COPIED["vae"],
    "text_encoder": {"encoder.layers.22.mlp.fc1.kernel": "text_model.encoder.layers.22.mlp.fc1.weight"},
}


def fill_random(name: str, value: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """In place: RoPE's constant frequencies, ~1 for norm weights, N(0, 0.02) elsewhere."""
    if name.endswith("rotary_emb.freqs"):
        value.copy_(ROPE_FREQS)
    elif "norm" in name and name.endswith(".weight"):
        value.normal_(1.0, 0.02, generator=gen)
    else:
        value.normal_(0.0, 0.02, generator=gen)
    return value


def write_random_checkpoint(path: pathlib.Path, shapes: dict, seed: int = 0) -> int:
    """A ``{"ema": state_dict}`` .pt with exactly `shapes`, random values, written without holding the
    model in process memory: every tensor is a view of one file-backed storage filled tensor by tensor
    (the page cache holds it), which ``torch.save`` then writes once. Returns the number of bytes."""
    total = sum(math.prod(s) for s in shapes.values())
    backing = path.with_suffix(".storage")
    storage = torch.UntypedStorage.from_file(str(backing), shared=True, nbytes=4 * total)
    buffer = torch.empty(0, dtype=torch.float32).set_(storage, 0, (total,))
    gen = torch.Generator().manual_seed(seed)
    state_dict, offset = {}, 0
    for name, shape in shapes.items():
        n = math.prod(shape)
        state_dict[name] = fill_random(name, buffer[offset : offset + n].view(*shape), gen)
        offset += n
    torch.save({"ema": state_dict}, path)
    del state_dict, buffer, storage
    backing.unlink()
    return 4 * total


class Lazy:
    """An array of known shape, made only when `streaming.save_safetensors` writes it (``np.asarray``)."""

    def __init__(self, shape: tuple[int, ...], make):
        self.shape, self.make = tuple(shape), make

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self.make()


def write_random_safetensors(path: pathlib.Path, shapes: dict, seed: int = 0) -> int:
    """A float32 .safetensors file with exactly `shapes`, random values, made and written one tensor at a
    time. Returns the number of bytes of its tensors."""
    gen = torch.Generator().manual_seed(seed)
    streaming.save_safetensors(
        path,
        {n: Lazy(s, lambda n=n, s=s: fill_random(n, torch.empty(s), gen).numpy()) for n, s in shapes.items()},
    )
    return 4 * sum(math.prod(s) for s in shapes.values())


def meta_shapes(component: str, config: dict) -> dict[str, tuple[int, ...]]:
    """The state-dict shapes of a diffusers / transformers component built on the ``meta`` device."""
    with torch.device("meta"):
        if component == "unet":
            model = UNet2DConditionModel(**config)
        elif component == "vae":
            model = AutoencoderKL(**config)
        else:
            model = transformers.CLIPTextModel(transformers.CLIPTextConfig(**config))
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if component == "text_encoder":  # the released files' names (transformers ≥ 5.6 drops the prefix)
        shapes = {k if k.startswith("text_model.") else f"text_model.{k}": v for k, v in shapes.items()}
    return shapes


def weights_file(folder: pathlib.Path, component: str) -> pathlib.Path:
    """A diffusers folder's safetensors weights of `component`."""
    return folder / component / sources.WEIGHT_NAMES[component][0]


def write_diffusers_folder(folder: pathlib.Path, configs: dict, index: dict | None = None) -> int:
    """A diffusers pipeline folder: per component its config.json and random float32 weights in the real
    shapes, plus a tiny tokenizer (conversion only copies it). Returns the number of weight bytes."""
    total = 0
    for seed, (component, config) in enumerate(configs.items()):
        (folder / component).mkdir(parents=True)
        (folder / component / "config.json").write_text(json.dumps(config, indent=2))
        total += write_random_safetensors(
            weights_file(folder, component), meta_shapes(component, config), seed
        )
    tiny_sd.write_vocab(folder / "tokenizer")
    if index is not None:
        (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return total


def write_original_file(path: pathlib.Path, folder: pathlib.Path) -> int:
    """The SD 1.x diffusers `folder`'s weights as one original-layout (CompVis) .safetensors, copied one
    tensor at a time: the VAE's attention projections as 1×1 convs and a DDPM buffer, as in the released
    files. Returns the number of bytes of its tensors."""
    attention_up_levels = {
        i for i, t in enumerate(SD14["unet"]["up_block_types"]) if t.startswith("CrossAttn")
    }
    rename = {
        "unet": lambda k: original_sd.UNET_PREFIX + to_ldm_unet(k, attention_up_levels),
        "vae": lambda k: original_sd.VAE_PREFIX + to_ldm_vae(k, len(SD14["vae"]["block_out_channels"])),
        "text_encoder": lambda k: original_sd.TEXT_PREFIX + k,
    }
    tensors = {"alphas_cumprod": Lazy((1000,), lambda: np.linspace(1, 0, 1000, dtype=np.float32))}
    with contextlib.ExitStack() as stack:
        for component, new_name in rename.items():
            f = stack.enter_context(
                safetensors.safe_open(str(weights_file(folder, component)), framework="np")
            )
            for key in f.keys():
                shape = tuple(f.get_slice(key).get_shape())
                if component == "vae" and len(shape) == 2:  # the VAE's only Linear weights: its attention's
                    shape += (1, 1)
                tensors[new_name(key)] = Lazy(
                    shape, lambda f=f, key=key, shape=shape: f.get_tensor(key).reshape(shape)
                )
        streaming.save_safetensors(path, tensors)
    return 4 * sum(math.prod(t.shape) for t in tensors.values())


def _tiny_unet():
    config = unet3d.UNet3DConfig.from_diffusers_dict(tiny_sd.UNET, temporal="rope_relpos")
    return unet3d.UNet3D(config, rngs=nnx.Rngs(2))


def write_small_sd_folder(folder: pathlib.Path) -> pathlib.Path:
    """The VAE / text encoder / tokenizer the base stage borrows, tiny except for the text encoder's
    width, which must equal the released UNet's cross_attention_dim (768)."""
    vocab = tiny_sd.write_vocab(folder.parent / "vocab")
    n_vocab = len(json.loads((vocab / "vocab.json").read_text()))
    text_cfg = clip_text.CLIPTextConfig(
        vocab_size=n_vocab,
        hidden_size=768,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=12,
        eos_token_id=n_vocab - 1,
    )
    return model_folder.save(
        folder,
        stage="base",
        unet=_tiny_unet(),
        vae=vae.AutoencoderKL(vae.VAEConfig.from_diffusers_dict(tiny_sd.VAE), rngs=nnx.Rngs(0)),
        text_encoder=clip_text.CLIPTextModel(text_cfg, rngs=nnx.Rngs(1)),
        tokenizer=tokenizer.Tokenizer.from_folder(vocab),
        scheduler_config=to_folder.scheduler_config("base"),
    )


# Runs a script as ``__main__``, then prints its peak RSS: VmHWM, the high-water mark of the memory it ran
# in. (``os.wait4``'s ``ru_maxrss`` will not do: at exec, Linux folds into it the high-water mark of the
# memory the child was spawned from — with vfork, the test process's own, which has mapped a whole
# source file while writing it.)
_REPORT_PEAK = """
import pathlib, runpy, sys
script, sys.argv = sys.argv[1], sys.argv[1:]
try:
    runpy.run_path(script, run_name="__main__")
finally:
    status = pathlib.Path("/proc/self/status").read_text()
    print(next(line for line in status.splitlines() if line.startswith("VmHWM:")), flush=True)
"""


def _rss_anon(pid: int) -> int:
    """The process's resident anonymous memory in bytes (what the page cache cannot take back)."""
    try:
        status = pathlib.Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next(
        (int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("RssAnon:")), 0
    )


def run_measured(args: list[str], log: pathlib.Path) -> tuple[int, float, int, int]:
    """``(exit code, seconds, peak RSS, peak anonymous RSS)`` of a Python script run in a subprocess, in
    bytes. The peak RSS is the script's own VmHWM (`_REPORT_PEAK`); it counts the memory-mapped source
    pages it touched too, so the anonymous part is sampled from ``/proc`` every 0.1 s alongside."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    t0 = time.perf_counter()
    with open(log, "wb") as f:
        proc = subprocess.Popen(
            [sys.executable, "-c", _REPORT_PEAK, *args], env=env, stdout=f, stderr=subprocess.STDOUT
        )
        anon = 0
        while proc.poll() is None:
            anon = max(anon, _rss_anon(proc.pid))
            time.sleep(0.1)
    peaks = re.findall(r"^VmHWM:\s+(\d+) kB$", log.read_text(), re.MULTILINE)
    return proc.returncode, time.perf_counter() - t0, int(peaks[-1]) * 1024 if peaks else 0, anon


def convert_measured(args: list[str], out: pathlib.Path, source_bytes: int) -> None:
    """Run ``tools/convert_sd.py args --out out`` in a subprocess, print its time and memory, and assert
    that it succeeded within the bounds of the float32 model it wrote (its weight files' size)."""
    log = out.with_name(out.name + ".log")
    code, seconds, peak, anon = run_measured(
        [str(ROOT / "tools" / "convert_sd.py"), *args, "--out", str(out)], log
    )
    assert code == 0, log.read_text()
    model_bytes = sum((out / c / "model.safetensors").stat().st_size for c in ("unet", "vae", "text_encoder"))
    print(
        f"\nconvert_sd.py {' '.join(args[:3] if args[0] == 'lavie' else args[:1])}: {seconds:.0f} s, "
        f"source {source_bytes / 1e9:.2f} GB, float32 model written {model_bytes / 1e9:.2f} GB; "
        f"peak RSS {peak / 1e9:.2f} GB = {peak / model_bytes:.2f}×, "
        f"peak anonymous RSS {anon / 1e9:.2f} GB = {anon / model_bytes:.2f}×"
    )
    assert peak < PEAK_BOUND * model_bytes, f"peak RSS {peak / 1e9:.2f} GB"
    assert anon < ANON_BOUND * model_bytes, f"peak anonymous RSS {anon / 1e9:.2f} GB"


def to_our_layout(ours: str, value: np.ndarray) -> np.ndarray:
    """A PyTorch weight as we store it: Linear (out, in) → (in, out), conv OIHW → HWIO."""
    if value.ndim == 2 and not ours.endswith(".embedding"):
        return value.T
    return value.transpose(2, 3, 1, 0) if value.ndim == 4 else value


def assert_copied(weights: pathlib.Path, source, names: dict[str, str]) -> None:
    """Each ``{our name: source name}`` of `names` is in `weights` unchanged; ``source(name)`` reads one."""
    with safetensors.safe_open(str(weights), framework="np") as f:
        for ours, theirs in names.items():
            np.testing.assert_array_equal(
                f.get_tensor(ours), to_our_layout(ours, source(theirs)), err_msg=ours
            )


def released_unet_bytes(stage: str) -> int:
    """The float32 size of the released LaVie UNet of `stage` without its RoPE constants (not stored)."""
    return 4 * sum(math.prod(s) for k, s in SPEC[stage].items() if not k.endswith("rotary_emb.freqs"))


def check_inflated_folder(out: pathlib.Path, source: pathlib.Path, copied: dict, stage: str) -> None:
    """The converted folder holds the diffusers `source`'s tensors unchanged, temporal attention whose
    output projections are zero, and exactly as many UNet parameters as the released LaVie `stage`."""
    for component, names in copied.items():
        with safetensors.safe_open(str(weights_file(source, component)), framework="np") as f:
            assert_copied(out / component / "model.safetensors", f.get_tensor, names)
    unet = out / "unet" / "model.safetensors"
    with safetensors.safe_open(str(unet), framework="np") as f:
        zero = [k for k in f.keys() if re.search(r"\.(attn_temp|attn_temporal)\.to_out\.0\.kernel$", k)]
        assert len(zero) == 16 and not any(f.get_tensor(k).any() for k in zero)
    assert unet.stat().st_size == pytest.approx(released_unet_bytes(stage), rel=1e-3)


@pytest.fixture(scope="module")
def scratch():
    root = pathlib.Path(tempfile.mkdtemp(prefix="lavie_full_size_"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def sd14(scratch):
    """A full-size SD 1.4 diffusers folder of random weights: (folder, bytes of its weights)."""
    t0 = time.perf_counter()
    nbytes = write_diffusers_folder(scratch / "sd14", SD14)
    print(f"\nwrote a random {nbytes / 1e9:.2f} GB SD 1.4 folder in {time.perf_counter() - t0:.0f} s")
    return scratch / "sd14", nbytes


@pytest.mark.slow
def test_full_size_lavie_base_converts_within_memory_bound(scratch):
    shapes = {k: tuple(v) for k, v in SPEC["base"].items()}
    ckpt = scratch / "lavie_base.pt"
    t0 = time.perf_counter()
    source_bytes = write_random_checkpoint(ckpt, shapes)
    print(f"\nwrote a random {source_bytes / 1e9:.2f} GB checkpoint in {time.perf_counter() - t0:.0f} s")
    sd = write_small_sd_folder(scratch / "small_sd")
    out = scratch / "lavie_base"
    convert_measured(
        ["lavie", "--stage", "base", "--checkpoint", str(ckpt), "--sd", str(sd)], out, source_bytes
    )
    # Every released tensor but the RoPE constants is in the folder, in float32, unchanged.
    weights = out / "unet" / "model.safetensors"
    with safetensors.safe_open(str(weights), framework="np") as f:
        assert len(list(f.keys())) == sum(not k.endswith("rotary_emb.freqs") for k in shapes)
    source = torch.load(ckpt, mmap=True, weights_only=True)["ema"]
    temporal_q = "mid_block.attentions.0.transformer_blocks.0.attn_temp.to_q."
    assert_copied(
        weights,
        lambda name: source[name].numpy(),
        {"conv_in.kernel": "conv_in.weight", temporal_q + "kernel": temporal_q + "weight"},
    )
    assert weights.stat().st_size == pytest.approx(released_unet_bytes("base"), rel=1e-3)
    ckpt.unlink()
    shutil.rmtree(out)


@pytest.mark.slow
def test_full_size_sd_folder_converts_within_memory_bound(sd14):
    folder, source_bytes = sd14
    out = folder.with_name("sd14_from_folder")
    convert_measured(["sd", str(folder)], out, source_bytes)
    check_inflated_folder(out, folder, SD14_COPIED, "base")
    shutil.rmtree(out)


@pytest.mark.slow
def test_full_size_sd_single_file_converts_within_memory_bound(sd14):
    folder, _ = sd14
    single = folder.with_name("sd14.safetensors")
    t0 = time.perf_counter()
    source_bytes = write_original_file(single, folder)
    print(f"\nwrote the {source_bytes / 1e9:.2f} GB original-layout file in {time.perf_counter() - t0:.0f} s")
    out = folder.with_name("sd14_from_file")
    convert_measured(["sd", str(single)], out, source_bytes)
    check_inflated_folder(out, folder, SD14_COPIED, "base")
    single.unlink()
    shutil.rmtree(out)


@pytest.mark.slow
def test_full_size_upscaler_converts_within_memory_bound(scratch):
    folder = scratch / "x4"
    t0 = time.perf_counter()
    index = {"_class_name": "StableDiffusionUpscalePipeline", "max_noise_level": 350}
    source_bytes = write_diffusers_folder(folder, X4, index)
    print(
        f"\nwrote a random {source_bytes / 1e9:.2f} GB ×4 upscaler folder in {time.perf_counter() - t0:.0f} s"
    )
    out = scratch / "x4_vsr"
    convert_measured(["upscaler", str(folder)], out, source_bytes)
    check_inflated_folder(out, folder, X4_COPIED, "vsr")
    shutil.rmtree(folder)
    shutil.rmtree(out)


@pytest.mark.parametrize("stage", ["base", "vsr"])
def test_fresh_temporal_layers_are_a_fresh_models_made_a_chunk_at_a_time(stage, monkeypatch):
    """What an inflation adds, made without the module (a few parameters per compiled chunk here), equals
    the temporal parameters of ``UNet3D(config, rngs=nnx.Rngs(seed))`` bit for bit (not slow)."""
    monkeypatch.setattr(convert_unet, "FRESH_CHUNK_BYTES", 20_000)
    options = dict(to_folder.STAGE_UNET_OPTIONS[stage])
    unet = dict(tiny_sd.UNET)
    if stage == "vsr":
        unet.update(in_channels=7, num_class_embeds=1000)
        options["max_noise_level"] = 350
    config = unet3d.UNet3DConfig.from_diffusers_dict(unet, **options)
    fresh = convert_unet.fresh_temporal(config, seed=3)
    module = state.flat_params(unet3d.UNet3D(config, rngs=nnx.Rngs(3)))
    assert set(fresh) == {k for k in module if convert_unet._TEMPORAL.search("." + k)}
    made = {k: v for k, v in fresh.items() if isinstance(v, convert_unet.FreshParameter)}
    assert len({v.chunks.chunk_of[v.index] for v in made.values()}) > 5
    for name in sorted(made):  # the writer's order
        np.testing.assert_array_equal(np.asarray(made[name]), np.asarray(module[name]), err_msg=name)
    inflated = convert_unet.inflate({}, fresh)
    zero = [k for k in fresh if k not in made]
    assert zero and all(not inflated[k].any() and inflated[k].shape == module[k].shape for k in zero)
