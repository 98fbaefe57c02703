"""Text to video: ``python -m lavie_jax.sample --model DIR --prompt "a red circle moving left"``.

Writes, per prompt, ``<prompt>.mp4``, ``<prompt>.gif`` and a PNG contact sheet of the frames into
``--out``. The whole denoising loop and the VAE decode run as one compiled program; compile time is
reported separately from sampling time, and compiled programs are cached on disk
(``$LAVIE_JAX_CACHE_DIR``, default ``~/.cache/lavie_jax/jax``) so a second run skips compilation.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

EXAMPLES = """examples:
  python -m lavie_jax.sample --model converted/lavie_base --prompt "a teddy bear walking on the street"
  python -m lavie_jax.sample --model DIR --prompts-file prompts.txt --steps 25 --sampler dpm++2m --seed 3
  python -m lavie_jax.sample --model DIR --prompt "a cat" --frames 8 --height 256 --width 256 --out outputs
"""


def build_parser() -> argparse.ArgumentParser:
    from lavie_jax.diffusion import samplers

    p = argparse.ArgumentParser(
        prog="python -m lavie_jax.sample",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model", type=pathlib.Path, help="a lavie_jax model folder (tools/convert_sd.py writes one)"
    )
    p.add_argument("--prompt", action="append", default=[], help="a text prompt; repeat for several videos")
    p.add_argument("--prompts-file", type=pathlib.Path, help="a text file with one prompt per line")
    p.add_argument("--negative-prompt", default=None, help="the unconditional prompt (default: the model's)")
    p.add_argument("--frames", type=int, default=None, help="number of frames (default: the model's, 16)")
    p.add_argument("--height", type=int, default=None, help="video height in pixels (default: the model's)")
    p.add_argument("--width", type=int, default=None, help="video width in pixels (default: the model's)")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's, 50)")
    p.add_argument(
        "--guidance", type=float, default=None, help="classifier-free guidance scale (default 7.5)"
    )
    p.add_argument("--sampler", choices=samplers.NAMES, default=None, help="default: the model's (ddpm)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same video")
    p.add_argument(
        "--fps", type=float, default=None, help="frames per second of the written videos (default 8)"
    )
    p.add_argument(
        "--attention",
        choices=("auto", "chunked", "xla", "cudnn"),
        default="auto",
        help="attention implementation; auto = memory-efficient chunked on CPU, XLA elsewhere",
    )
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("outputs"), help="output folder")
    return p


def read_prompts(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    prompts = list(args.prompt)
    if args.prompts_file is not None:
        if not args.prompts_file.is_file():
            parser.error(f"--prompts-file {str(args.prompts_file)!r} does not exist")
        prompts += [line.strip() for line in args.prompts_file.read_text().splitlines() if line.strip()]
    if not prompts:
        parser.error("no prompt given: pass --prompt TEXT (repeatable) or --prompts-file FILE")
    return prompts


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    prompts = read_prompts(args, parser)
    for name in ("frames", "height", "width", "steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be a positive integer, got {value}")
    if args.guidance is not None and args.guidance < 0:
        parser.error(f"--guidance must be ≥ 0, got {args.guidance}")
    if args.fps is not None and args.fps <= 0:
        parser.error(f"--fps must be > 0, got {args.fps}")
    if args.model is None:
        parser.error("--model DIR is required (no default model ships with this version yet)")

    from lavie_jax import compilation_cache, media
    from lavie_jax.pipelines import base

    compilation_cache.enable()
    try:
        pipe = base.BasePipeline.from_pretrained(args.model, attention_impl=args.attention)
        request = pipe.prepare(
            prompts,
            num_frames=args.frames,
            height=args.height,
            width=args.width,
            steps=args.steps,
            guidance=args.guidance,
            sampler=args.sampler,
            negative_prompt=args.negative_prompt,
        )
    except ValueError as err:
        parser.error(str(err))

    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    compiled = pipe.compile(request, with_progress=True)
    print(f"compile: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    t0 = time.perf_counter()
    frames = pipe.run(compiled, request, seed=args.seed, progress_bar=True)
    print(f"sampling: {time.perf_counter() - t0:.1f} s for {len(prompts)} video(s)", file=sys.stderr)

    fps = args.fps or request.fps
    for prompt, video in zip(prompts, frames):
        stem = media.unique_stem(args.out, media.safe_stem(prompt), (".mp4", ".gif", ".png"))
        media.write_mp4(args.out / f"{stem}.mp4", video, fps)
        media.write_gif(args.out / f"{stem}.gif", video, fps)
        media.write_png(args.out / f"{stem}.png", media.contact_sheet(video))
        print(args.out / f"{stem}.mp4")
    return 0


if __name__ == "__main__":
    sys.exit(main())
