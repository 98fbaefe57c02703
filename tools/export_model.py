"""Export a training run's EMA weights to a model folder the sampler loads.

    python tools/export_model.py --workdir runs/tiny_base --out models/tiny_base
    python -m lavie_jax.sample --model models/tiny_base --prompt "a red circle moving left"

    python tools/export_model.py --workdir runs/vae --out models/vae     # stage 'vae': a vae/ folder
    python -m lavie_jax.train --config configs/tiny_base.py --workdir runs/base \\
        --config.encoders_from=models/vae_parent                             # a folder holding vae/

UNet stages (base, interpolation, vsr) get a complete model folder: the EMA UNet, the frozen VAE,
text encoder and tokenizer the run trained with, and the stage's sampling conventions at the run's
size. A VAE run gets one component folder with its latent scaling factor measured on training
frames. The latest checkpoint is used unless --step says otherwise; an existing --out is refused.
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", required=True, help="the training run's workdir (holds checkpoints/)")
    parser.add_argument("--out", required=True, help="the folder to write (must not exist)")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    parser.add_argument(
        "--dtype", default="float32", choices=("float32", "bfloat16"), help="storage dtype of the weights"
    )
    parser.add_argument("--steps", type=int, default=None, help="the folder's default sampling steps")
    parser.add_argument("--guidance", type=float, default=None, help="the folder's default CFG scale")
    parser.add_argument("--negative-prompt", default=None, help="the folder's default negative prompt")
    parser.add_argument("--prompt-suffix", default=None, help="text the stage appends to every prompt")
    args = parser.parse_args(argv)
    names = ("steps", "guidance", "negative_prompt", "prompt_suffix")
    sampling = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    from lavie_jax.training import export

    start = time.perf_counter()
    try:
        out = export.export_model(args.workdir, args.out, step=args.step, dtype=args.dtype, sampling=sampling)
    except ValueError as err:
        parser.exit(2, f"error: {err}\n")
    print(f"exported {args.workdir} to {out} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
