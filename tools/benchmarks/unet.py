"""``python tools/benchmark.py unet``: one UNet3D forward vs PyTorch's spatial-only equivalent.

A width-reduced base UNet (block_out_channels 128/256/512/512, 4 heads so every head has ≥ 32
channels for RoPE-32; cross-attention dim 768), 16 frames × 32×32 latents, batch 2, 77 text tokens.
Printed side by side in one run: the JAX forward (jit, median of 3), its FLOPs (XLA cost analysis),
achieved GFLOP/s against a float32 2048³ matmul measured now, and diffusers' UNet2DConditionModel in
PyTorch eager over all 32 frames (the same computation without the temporal layers).
"""

from __future__ import annotations

import argparse

CHANNELS = (128, 256, 512, 512)
HEADS = 4


def jax_forward(impl: str, frames: int, size: int, batch: int) -> tuple[float, float, float]:
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from lavie_jax.models import unet3d

    from .common import timed

    config = unet3d.UNet3DConfig(block_out_channels=CHANNELS, num_attention_heads=HEADS, attention_impl=impl)
    model = unet3d.UNet3D(config, rngs=nnx.Rngs(0))
    graph, params = nnx.split(model)
    x = jax.random.normal(jax.random.key(1), (batch, frames, size, size, 4))
    ctx = jax.random.normal(jax.random.key(2), (batch, 77, 768))
    t = jnp.full((batch,), 500)
    fwd = jax.jit(lambda p, x, t, c: nnx.merge(graph, p)(x, t, c))
    compiled = fwd.lower(params, x, t, ctx).compile()
    flops = float((compiled.cost_analysis() or {}).get("flops", float("nan")))
    compiled(params, x, t, ctx).block_until_ready()
    return timed(lambda: compiled(params, x, t, ctx).block_until_ready()), flops, 0.0


def torch_spatial(frames: int, size: int, batch: int) -> float:
    import torch
    from diffusers import UNet2DConditionModel

    from .common import timed

    torch.manual_seed(0)
    model = UNet2DConditionModel(
        block_out_channels=CHANNELS, attention_head_dim=HEADS, cross_attention_dim=768, sample_size=size
    ).eval()
    x = torch.randn(batch * frames, 4, size, size)
    ctx = torch.randn(batch * frames, 77, 768)
    t = torch.full((batch * frames,), 500)
    with torch.no_grad():
        model(x, t, ctx)
        return timed(lambda: model(x, t, ctx), repeats=2)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tools/benchmark.py unet", description=__doc__)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args(argv)

    from .common import matmul_gflops

    rate = matmul_gflops()
    print(f"fp32 matmul 2048³: {rate:.0f} GFLOP/s")
    results = {}
    for impl in ("xla", "chunked"):
        seconds, flops, _ = jax_forward(impl, args.frames, args.size, args.batch)
        results[impl] = seconds
        print(
            f"JAX UNet3D forward [{impl}]: {seconds:.2f} s, {flops / 1e12:.3f} TFLOP, "
            f"{flops / seconds / 1e9:.0f} GFLOP/s = {flops / seconds / 1e9 / rate:.0%} of the matmul rate"
        )
    torch_s = torch_spatial(args.frames, args.size, args.batch)
    print(f"PyTorch eager UNet2D over {args.batch * args.frames} frames (spatial only): {torch_s:.2f} s")
    for impl, seconds in results.items():
        print(f"ratio PyTorch-spatial / JAX [{impl}]: {torch_s / seconds:.2f}× (> 1 means JAX is faster)")
    return 0
