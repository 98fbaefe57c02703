"""``python tools/benchmark.py sample``: denoising steps at the real base latent shape.

N DDPM steps with classifier-free guidance (batch 2 = cond + uncond) of a width-reduced base UNet
(128/256/512/512, 4 heads) at 16 × 40 × 64 latents, inside one jitted ``fori_loop``, against
diffusers' UNet2DConditionModel in PyTorch eager over all 32 frames at the same widths (the
spatial-only lower bound). Each measurement runs in its own process: compile time, seconds per step,
peak RSS. The "warm cache" row is what a second ``python -m lavie_jax.sample`` run sees: the program
comes from the persistent compilation cache (filled by a first process), so the peak RSS is the
sampling's own, without the compiler's. JAX rows compile as the pipelines do, with
`lavie_jax.compiler_options` (XLA's memory-minimising scheduler on CPU); the "default XLA scheduler"
row shows what that choice saves. As in the pipelines, the JAX children load the UNet from a component
folder (a first child writes the random weights, seed 0) and release the compiler's freed heap
(`lavie_jax.heap`) before running. ``--full`` also runs one CFG step of the full-width base UNet
(909 M parameters, random weights) with the chunked attention — slow (minutes).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import tempfile
import time

REDUCED = dict(block_out_channels=(128, 256, 512, 512), num_attention_heads=4)
FULL = dict()  # the released configuration


def child_save(folder: str, full: bool) -> dict:
    """Write the random UNet (seed 0) as a component folder, for the JAX children to load."""
    from flax import nnx

    from lavie_jax.models import io as model_io
    from lavie_jax.models import unet3d

    config = unet3d.UNet3DConfig(**(FULL if full else REDUCED))
    model_io.save_component(folder, unet3d.UNet3D(config, rngs=nnx.Rngs(0)), {}, kind="unet")
    return {}


def child_jax(steps: int, full: bool, impl: str, progress: bool, cache: str | None, weights: str) -> dict:
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from lavie_jax import compiler_options, heap
    from lavie_jax.diffusion import samplers, schedule
    from lavie_jax.models import io as model_io
    from lavie_jax.models import unet3d
    from lavie_jax.pipelines import guidance
    from lavie_jax.pipelines import progress as progress_lib

    from .common import peak_rss_gb

    if cache:
        from lavie_jax import compilation_cache

        compilation_cache.enable(cache)
    config = unet3d.UNet3DConfig(**(FULL if full else REDUCED), attention_impl=impl)
    # Loaded from a component folder, as the pipelines load a model (no eager init in this process).
    unet = model_io.load_component(
        weights, kind="unet", build=lambda _: unet3d.UNet3D(config, rngs=nnx.Rngs(0))
    )
    graph, params = nnx.split(unet)
    plan = samplers.make_plan("ddpm", schedule.ScheduleConfig(), steps, spacing="lavie_base")
    x = jax.random.normal(jax.random.key(1), (1, 16, 40, 64, 4))
    ctx = jax.random.normal(jax.random.key(2), (2, 77, 768))

    def loop(params, x, ctx):
        unet = nnx.merge(graph, params)

        def body(i, state):
            out = unet(jnp.concatenate([state.sample] * 2), jnp.full((2,), plan.timesteps[i]), ctx)
            if progress:
                progress_lib.report(i)
            return samplers.step("ddpm", plan, state, guidance.combine(out, 7.5, True))

        return jax.lax.fori_loop(0, steps, body, samplers.init(x, jax.random.key(3))).sample

    t0 = time.perf_counter()
    compiled = jax.jit(loop).lower(params, x, ctx).compile(compiler_options=compiler_options.sampling())
    compile_s = time.perf_counter() - t0
    heap.release_free_memory()  # as the pipelines do after compiling
    t0 = time.perf_counter()
    compiled(params, x, ctx).block_until_ready()
    run_s = time.perf_counter() - t0
    return {"compile_s": compile_s, "s_per_step": run_s / steps, "peak_rss_gb": peak_rss_gb()}


def child_torch(steps: int) -> dict:
    import torch
    from diffusers import UNet2DConditionModel

    from .common import peak_rss_gb

    torch.manual_seed(0)
    model = UNet2DConditionModel(
        block_out_channels=REDUCED["block_out_channels"],
        attention_head_dim=REDUCED["num_attention_heads"],
        cross_attention_dim=768,
    ).eval()
    x = torch.randn(32, 4, 40, 64)  # (B·F) frames, CFG batch 2 × 16 frames
    ctx = torch.randn(32, 77, 768)
    with torch.no_grad():
        t0 = time.perf_counter()
        for _ in range(steps):
            x = x - 0.01 * model(x, torch.full((32,), 500), ctx).sample
        run_s = time.perf_counter() - t0
    return {"compile_s": 0.0, "s_per_step": run_s / steps, "peak_rss_gb": peak_rss_gb()}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tools/benchmark.py sample", description=__doc__)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--full", action="store_true", help="also one CFG step of the full 909 M UNet (slow)")
    parser.add_argument("--child", choices=("save", "jax", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--impl", default="chunked", help=argparse.SUPPRESS)
    parser.add_argument("--progress", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--full-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "save":
        print(json.dumps(child_save(args.weights, args.full_child)))
        return 0
    if args.child == "jax":
        print(
            json.dumps(
                child_jax(args.steps, args.full_child, args.impl, args.progress, args.cache, args.weights)
            )
        )
        return 0
    if args.child == "torch":
        print(json.dumps(child_torch(args.steps)))
        return 0

    from lavie_jax import compiler_options

    from .common import run_child

    steps = str(args.steps)
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="lavie_jax_bench_"))
    weights, cache = scratch / "unet", scratch / "cache"
    run_child("sample", "--child", "save", "--weights", str(weights))

    def jax_row(*extra: str, env=None) -> dict:
        return run_child(
            "sample", "--child", "jax", "--steps", steps, "--weights", str(weights), *extra, env=env
        )

    rows = {
        "JAX chunked": jax_row("--impl", "chunked"),
        "JAX chunked, default XLA scheduler": jax_row(env={compiler_options.ENV_VAR: "default"}),
        "JAX xla": jax_row("--impl", "xla"),
        "JAX chunked + progress callback": jax_row("--progress"),
        "PyTorch eager, spatial only": run_child("sample", "--child", "torch", "--steps", steps),
    }
    jax_row("--cache", str(cache))  # fills the cache
    rows["JAX chunked, warm cache"] = jax_row("--cache", str(cache))
    if args.full:
        full = scratch / "unet_full"
        run_child("sample", "--child", "save", "--full-child", "--weights", str(full))
        rows["JAX full 909M, 1 CFG step, chunked"] = run_child(
            "sample",
            "--child",
            "jax",
            "--steps",
            "1",
            "--full-child",
            "--impl",
            "chunked",
            "--weights",
            str(full),
        )
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"{'run':40s} {'compile s':>10s} {'s/step':>8s} {'peak RSS GB':>12s}")
    for name, r in rows.items():
        print(f"{name:40s} {r['compile_s']:10.1f} {r['s_per_step']:8.2f} {r['peak_rss_gb']:12.2f}")
    ref = rows["PyTorch eager, spatial only"]
    for name in ("JAX chunked", "JAX chunked, default XLA scheduler", "JAX xla", "JAX chunked, warm cache"):
        r = rows[name]
        print(
            f"{name}: s/step ratio PyTorch/JAX {ref['s_per_step'] / r['s_per_step']:.2f}×, "
            f"peak RSS ratio JAX/PyTorch {r['peak_rss_gb'] / ref['peak_rss_gb']:.2f}"
        )
    return 0
