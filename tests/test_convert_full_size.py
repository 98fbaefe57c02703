"""Converting a full-size LaVie base checkpoint (~909M parameters, ~3.6 GB as a float32 .pt) fits in
memory: `tools/convert_sd.py lavie --stage base` runs in a subprocess whose peak RSS (``os.wait4``) stays
within 1.5× the float32 model — one copy of the model, not a PyTorch copy plus converted copies — and
whose anonymous memory (not counting the memory-mapped checkpoint's pages) within 0.25×. Measured on the
2-core development machine: 4.2 GB = 1.16× (0.4 GB anonymous) in ~25 s; before the converter streamed
its output and memory-mapped the checkpoint, 7.8 GB = 2.15× (7.6 GB anonymous).

    pytest -m slow -s tests/test_convert_full_size.py      # prints the peak RSS and the time

Needs ~8 GB of free disk under the temporary folder (the checkpoint and the converted folder, deleted
afterwards) and a few minutes.
"""

import json
import math
import os
import pathlib
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
from flax import nnx
from test_convert_cli import ROOT, SPEC

from lavie_jax.convert import to_folder
from lavie_jax.models import clip_text, tokenizer, unet3d, vae
from lavie_jax.pipelines import model_folder

pytestmark = pytest.mark.slow
PEAK_BOUND = 1.5  # × the float32 size of the checkpoint
ANON_BOUND = 0.25  # × the same: the interpreter, JAX and one converted tensor at a time
ROPE_FREQS = 1.0 / 10000 ** (torch.arange(0, 32, 2).float() / 32)


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
        value = buffer[offset : offset + n].view(*shape)
        offset += n
        if name.endswith("rotary_emb.freqs"):
            value.copy_(ROPE_FREQS)
        elif "norm" in name and name.endswith(".weight"):
            value.normal_(1.0, 0.02, generator=gen)
        else:
            value.normal_(0.0, 0.02, generator=gen)
        state_dict[name] = value
    torch.save({"ema": state_dict}, path)
    del state_dict, value, buffer, storage
    backing.unlink()
    return 4 * total


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
    """``(exit code, seconds, peak RSS, peak anonymous RSS)`` of a Python subprocess, in bytes. The peak
    RSS is ``os.wait4``'s ``ru_maxrss``; it counts the memory-mapped checkpoint pages it touched too, so
    the anonymous part is sampled from ``/proc`` every 0.1 s alongside."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    t0 = time.perf_counter()
    with open(log, "wb") as f:
        proc = subprocess.Popen([sys.executable, *args], env=env, stdout=f, stderr=subprocess.STDOUT)
        anon = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)  # reaps it: Popen never sees the status
            if pid:
                break
            anon = max(anon, _rss_anon(proc.pid))
            time.sleep(0.1)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.perf_counter() - t0, usage.ru_maxrss * 1024, anon  # ru_maxrss is in KiB


def test_full_size_lavie_base_converts_within_memory_bound():
    root = pathlib.Path(tempfile.mkdtemp(prefix="lavie_full_size_"))
    try:
        shapes = {k: tuple(v) for k, v in SPEC["base"].items()}
        ckpt = root / "lavie_base.pt"
        t0 = time.perf_counter()
        model_bytes = write_random_checkpoint(ckpt, shapes)
        print(f"\nwrote a random {model_bytes / 1e9:.2f} GB checkpoint in {time.perf_counter() - t0:.0f} s")
        sd = write_small_sd_folder(root / "sd")
        out = root / "lavie_base"
        args = [str(ROOT / "tools" / "convert_sd.py"), "lavie", "--stage", "base"]
        args += ["--checkpoint", str(ckpt), "--sd", str(sd), "--out", str(out)]
        code, seconds, peak, anon = run_measured(args, root / "convert.log")
        assert code == 0, (root / "convert.log").read_text()
        print(
            f"convert_sd.py lavie --stage base: {seconds:.0f} s, peak RSS {peak / 1e9:.2f} GB "
            f"= {peak / model_bytes:.2f}× the float32 checkpoint ({model_bytes / 1e9:.2f} GB); "
            f"peak anonymous RSS {anon / 1e9:.2f} GB"
        )
        # Every released tensor but the RoPE constants is in the folder, in float32, unchanged.
        weights = out / "unet" / "model.safetensors"
        kept = {k: s for k, s in shapes.items() if not k.endswith("rotary_emb.freqs")}
        with safetensors.safe_open(str(weights), framework="np") as f:
            assert len(list(f.keys())) == len(kept)
            source = torch.load(ckpt, mmap=True, weights_only=True)["ema"]
            for name in (
                "conv_in.weight",
                "mid_block.attentions.0.transformer_blocks.0.attn_temp.to_q.weight",
            ):
                got = f.get_tensor(name.removesuffix("weight") + "kernel")
                want = source[name].numpy()
                want = want.T if want.ndim == 2 else want.transpose(2, 3, 1, 0)
                np.testing.assert_array_equal(got, want)
            del source
        assert weights.stat().st_size == pytest.approx(4 * sum(math.prod(s) for s in kept.values()), rel=1e-3)
        assert peak < PEAK_BOUND * model_bytes, f"peak RSS {peak / 1e9:.2f} GB"
        assert anon < ANON_BOUND * model_bytes, f"peak anonymous RSS {anon / 1e9:.2f} GB"
    finally:
        shutil.rmtree(root, ignore_errors=True)
