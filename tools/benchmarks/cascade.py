"""``python tools/benchmark.py cascade``: each cascade stage's denoising loop at LaVie's real shapes.

Width-reduced UNets of the three stages (base and interpolation 128/256/512/512, VSR 128/256/256/512,
4 heads, the released options of each variant, random weights, chunked attention) run the stage's
sampler with classifier-free guidance — the UNet called once per step on both halves — inside one
jitted ``fori_loop`` (the pipelines' `denoise.sample`), at the shapes LaVie samples:

    base           16 × 40 × 64 latents                           (DDPM)
    interpolation  61 × 40 × 64 latents + the copied base latents (DDIM, respaced)
    vsr            one 8-frame chunk of 320 × 512 latents, in --tile × --tile tiles overlapping by
                   --tile-overlap (one compiled program for every tile; per chunk = per tile × tiles)

Each stage runs in its own process: compile time, seconds per step (the first call's wall time over
the steps, so it includes one-time buffer allocation) and the process's peak RSS. Text encoders and
VAE decodes are not included. ``--full`` measures the released widths instead (one step each; slow:
minutes per stage — run it once).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

STAGES = ("base", "interpolation", "vsr")
REDUCED = {
    "base": dict(block_out_channels=(128, 256, 512, 512), num_attention_heads=4),
    "interpolation": dict(block_out_channels=(128, 256, 512, 512), num_attention_heads=4),
    "vsr": dict(block_out_channels=(128, 256, 256, 512), num_attention_heads=4),
}
FRAMES = {"base": 16, "interpolation": 61, "vsr": 8}
LATENT = {"base": (40, 64), "interpolation": (40, 64), "vsr": (320, 512)}


def child(stage: str, steps: int, full: bool, tile: int, tile_overlap: int) -> dict:
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from lavie_jax.models import unet3d
    from lavie_jax.pipelines import denoise, stage_defaults, tiling

    from .common import peak_rss_gb

    preset = {"base": unet3d.lavie_base, "interpolation": unet3d.lavie_interpolation, "vsr": unet3d.lavie_vsr}
    config = preset[stage]()
    config = dataclasses.replace(config, attention_impl="chunked", **({} if full else REDUCED[stage]))
    defaults = {
        "base": stage_defaults.base_stage,
        "interpolation": stage_defaults.interpolation_stage,
        "vsr": stage_defaults.vsr_stage,
    }[stage]()
    graph, abstract = nnx.split(nnx.eval_shape(lambda: unet3d.UNet3D(config, rngs=nnx.Rngs(0))))
    leaves, treedef = jax.tree.flatten(abstract)
    keys = jax.random.split(jax.random.key(0), len(leaves))
    params = jax.tree.unflatten(
        treedef, [0.02 * jax.random.normal(k, a.shape, a.dtype) for k, a in zip(keys, leaves)]
    )
    num_params = sum(a.size for a in leaves)

    h, w = LATENT[stage]
    windows = 1
    if stage == "vsr" and tile:
        axes = (tiling.Axis(h, tile, tile_overlap), tiling.Axis(w, tile, tile_overlap))
        windows = len(axes[0].starts) * len(axes[1].starts)
        h, w = axes[0].window, axes[1].window
    frames = FRAMES[stage]
    c = config.out_channels
    x = jax.random.normal(jax.random.key(1), (1, frames, h, w, c))
    ctx = jax.random.normal(jax.random.key(2), (2, 77, config.cross_attention_dim))
    extra = jax.random.normal(jax.random.key(3), (2, frames, h, w, config.in_channels - c))
    plan = defaults.plan(defaults.sampler, steps)
    uncond_first = defaults.cfg_order == "uncond_first"

    def loop(params, x, ctx, extra):
        unet = nnx.merge(graph, params)

        def model(x2, t, context):
            if stage == "interpolation":  # cat([x_t, copied base latents])
                return unet(jnp.concatenate([x2, extra], axis=-1), t, context)
            if stage == "vsr":  # the noised low-res video and its noise level
                labels = jnp.full((x2.shape[0],), defaults.noise_level, jnp.int32)
                return unet(x2, t, context, low_res=extra, class_labels=labels)
            return unet(x2, t, context)

        return denoise.sample(
            model, defaults.sampler, plan, x, jax.random.key(4), ctx, defaults.guidance, uncond_first
        )

    t0 = time.perf_counter()
    compiled = jax.jit(loop).lower(params, x, ctx, extra).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    compiled(params, x, ctx, extra).block_until_ready()
    run_s = time.perf_counter() - t0
    return {
        "compile_s": compile_s,
        "s_per_step": run_s / steps,
        "peak_rss_gb": peak_rss_gb(),
        "windows": windows,
        "window": [frames, h, w],
        "params_m": num_params / 1e6,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tools/benchmark.py cascade",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--steps", type=int, default=2, help="denoising steps timed per stage (default 2)")
    parser.add_argument(
        "--stages", default=",".join(STAGES), help="comma-separated subset of base,interpolation,vsr"
    )
    parser.add_argument(
        "--tile", type=int, default=128, help="VSR tile size in latent cells (0: whole frames)"
    )
    parser.add_argument("--tile-overlap", type=int, default=16, help="VSR tile overlap in latent cells")
    parser.add_argument("--full", action="store_true", help="the released widths, one step per stage (slow)")
    parser.add_argument("--child", choices=STAGES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    steps = 1 if args.full else args.steps
    if args.child:
        print(json.dumps(child(args.child, steps, args.full, args.tile, args.tile_overlap)))
        return 0

    from .common import run_child

    stages = [s.strip() for s in args.stages.split(",")]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        parser.error(f"--stages: unknown {unknown}; expected some of {STAGES}")
    common = ["--steps", str(steps), "--tile", str(args.tile), "--tile-overlap", str(args.tile_overlap)]
    rows = {
        s: run_child("cascade", "--child", s, *common, *(["--full"] if args.full else [])) for s in stages
    }
    width = "released widths" if args.full else "reduced widths"
    print(f"cascade stages, {width}, {steps} step(s) each, CFG batch 2, chunked attention")
    header = ("params M", 9), ("window F×h×w", 14), ("compile s", 10), ("s/step", 9), ("peak RSS GB", 12)
    print(f"{'stage':14s} " + " ".join(f"{name:>{n}s}" for name, n in header))
    for s, r in rows.items():
        window = "×".join(map(str, r["window"]))
        print(
            f"{s:14s} {r['params_m']:9.1f} {window:>14s} {r['compile_s']:10.1f} {r['s_per_step']:9.2f} "
            f"{r['peak_rss_gb']:12.2f}"
        )
        if r["windows"] > 1:
            per_chunk = r["windows"] * r["s_per_step"]
            print(f"{'':14s} {r['windows']} tiles per 8-frame chunk → {per_chunk:.2f} s/step per chunk")
    return 0
