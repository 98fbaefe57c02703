"""``python tools/benchmark.py sample``: denoising steps at the real base latent shape.

N DDPM steps with classifier-free guidance (batch 2 = cond + uncond) of a width-reduced base UNet
(128/256/512/512, 4 heads) at 16 × 40 × 64 latents, inside one jitted ``fori_loop``, against
diffusers' UNet2DConditionModel in PyTorch eager over all 32 frames at the same widths (the
spatial-only lower bound). Each measurement runs in its own process: compile time, seconds per step,
peak RSS. The "warm cache" row is what a second ``python -m lavie_jax.sample`` run sees: the program
comes from the persistent compilation cache (filled by a first process), so the peak RSS is the
sampling's own, without the compiler's. JAX rows compile as the pipelines do, with
`lavie_jax.compiler_options` (XLA's memory-minimising scheduler on CPU); the "default XLA scheduler"
row shows what that choice saves. ``--full`` also runs one CFG step of the full-width base UNet
(909 M parameters, random weights) with the chunked attention — slow (minutes).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time

REDUCED = dict(block_out_channels=(128, 256, 512, 512), num_attention_heads=4)
FULL = dict()  # the released configuration


def child_jax(steps: int, full: bool, impl: str, progress: bool, cache: str | None) -> dict:
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from lavie_jax import compiler_options
    from lavie_jax.diffusion import samplers, schedule
    from lavie_jax.models import unet3d
    from lavie_jax.pipelines import guidance
    from lavie_jax.pipelines import progress as progress_lib

    from .common import peak_rss_gb

    if cache:
        from lavie_jax import compilation_cache

        compilation_cache.enable(cache)
    config = unet3d.UNet3DConfig(**(FULL if full else REDUCED), attention_impl=impl)
    graph, params = nnx.split(unet3d.UNet3D(config, rngs=nnx.Rngs(0)))
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
    parser.add_argument("--child", choices=("jax", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--impl", default="chunked", help=argparse.SUPPRESS)
    parser.add_argument("--progress", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--full-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "jax":
        print(json.dumps(child_jax(args.steps, args.full_child, args.impl, args.progress, args.cache)))
        return 0
    if args.child == "torch":
        print(json.dumps(child_torch(args.steps)))
        return 0

    from lavie_jax import compiler_options

    from .common import run_child

    steps = str(args.steps)
    cache = tempfile.mkdtemp(prefix="lavie_jax_bench_cache_")
    rows = {
        "JAX chunked": run_child("sample", "--child", "jax", "--steps", steps, "--impl", "chunked"),
        "JAX chunked, default XLA scheduler": run_child(
            "sample", "--child", "jax", "--steps", steps, env={compiler_options.ENV_VAR: "default"}
        ),
        "JAX xla": run_child("sample", "--child", "jax", "--steps", steps, "--impl", "xla"),
        "JAX chunked + progress callback": run_child(
            "sample", "--child", "jax", "--steps", steps, "--progress"
        ),
        "PyTorch eager, spatial only": run_child("sample", "--child", "torch", "--steps", steps),
    }
    warm = ("sample", "--child", "jax", "--steps", steps, "--cache", cache)
    run_child(*warm)  # fills the cache
    rows["JAX chunked, warm cache"] = run_child(*warm)
    shutil.rmtree(cache, ignore_errors=True)
    if args.full:
        rows["JAX full 909M, 1 CFG step, chunked"] = run_child(
            "sample", "--child", "jax", "--steps", "1", "--full-child", "--impl", "chunked"
        )
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
