"""Text to video: ``python -m lavie_jax.sample --prompt "a red circle moving left"``.

Without ``--model``, the default model that ships with the package runs as a cascade: a small model
trained on the synthetic set (lavie_jax.default_model) that knows prompts like "a blue square moving
up, quickly" (colours red, green, blue, yellow, purple; circle, square, triangle; left, right, up,
down).

Base stage alone (``--model``): writes, per prompt, ``<prompt>.mp4``, ``<prompt>.gif`` and a PNG
contact sheet of the frames into ``--out``. The whole cascade (``--cascade``): the base model makes 16
frames, the interpolation model (``--interp-model``) 61, the ×4 VSR model (``--vsr-model``) upscales
them; every stage's video is written (``<prompt>_base.mp4``, ``<prompt>_interpolation.mp4``,
``<prompt>_vsr.mp4``, each with a .gif; a contact sheet of the base video) as soon as the stage is
done, and each stage reports its load, compile and sampling time and its peak RSS. Stages run one
after another; each is released before the next is loaded. Every argument of every stage is checked
before anything is compiled.

Each stage's denoising loop and VAE decode run as one compiled program; compiled programs are cached
on disk (``$LAVIE_JAX_CACHE_DIR``, default ``~/.cache/lavie_jax/jax``) so a second run skips compilation.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

EXAMPLES = """examples:
  python -m lavie_jax.sample --prompt "a red circle moving left, slowly"      # the shipped model
  python -m lavie_jax.sample --model converted/lavie_base --prompt "a teddy bear walking on the street"
  python -m lavie_jax.sample --model DIR --prompts-file prompts.txt --steps 25 --sampler dpm++2m --seed 3
  python -m lavie_jax.sample --model DIR --prompt "a cat" --frames 8 --height 256 --width 256 --out outputs
  python -m lavie_jax.sample --cascade --model converted/lavie_base \\
      --interp-model converted/lavie_interpolation --vsr-model converted/lavie_vsr \\
      --prompt "a teddy bear walking on the street" --stages base,interp,vsr --vsr-tile 128
"""
CASCADE_FLAGS = (
    "interp_model",
    "vsr_model",
    "stages",
    "interp_steps",
    "interp_guidance",
    "interp_seed",
    "vsr_steps",
    "vsr_guidance",
    "vsr_seed",
    "vsr_noise_level",
    "vsr_chunk_frames",
    "vsr_chunk_overlap",
    "vsr_tile",
    "vsr_tile_overlap",
)


def build_parser() -> argparse.ArgumentParser:
    from lavie_jax.diffusion import samplers

    p = argparse.ArgumentParser(
        prog="python -m lavie_jax.sample",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model",
        type=pathlib.Path,
        help="a lavie_jax base model folder (tools/convert_sd.py writes one); omitted: the shipped "
        "default model runs as a cascade (its interpolation and VSR stages unless --interp-model / "
        "--vsr-model / --stages say otherwise)",
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
    p.add_argument("--fps", type=float, default=None, help="frames per second of the base video (default 8)")
    p.add_argument(
        "--attention",
        choices=("auto", "chunked", "xla", "cudnn"),
        default="auto",
        help="attention implementation; auto = memory-efficient chunked on CPU, XLA elsewhere",
    )
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("outputs"), help="output folder")

    c = p.add_argument_group(
        "cascade", "--cascade runs base → interpolation → ×4 VSR; stage options default to each model's"
    )
    c.add_argument("--cascade", action="store_true", help="run the cascade instead of the base stage alone")
    c.add_argument(
        "--interp-model", type=pathlib.Path, help="the interpolation model folder (16 → 61 frames)"
    )
    c.add_argument("--vsr-model", type=pathlib.Path, help="the ×4 video super-resolution model folder")
    c.add_argument(
        "--stages",
        default=None,
        help="stages to run, in order, starting with base (default base,interp,vsr; e.g. base,interp "
        "or base,vsr)",
    )
    c.add_argument("--interp-steps", type=int, default=None, help="interpolation steps (default 50)")
    c.add_argument("--interp-guidance", type=float, default=None, help="interpolation CFG scale (default 4)")
    c.add_argument("--interp-seed", type=int, default=None, help="interpolation seed (default --seed)")
    c.add_argument("--vsr-steps", type=int, default=None, help="VSR steps (default 50)")
    c.add_argument("--vsr-guidance", type=float, default=None, help="VSR CFG scale (default 5)")
    c.add_argument("--vsr-seed", type=int, default=None, help="VSR seed (default --seed)")
    c.add_argument(
        "--vsr-noise-level",
        type=int,
        default=None,
        help="noise added to the low-res input, 0..350 (default 50); higher = more freedom, less fidelity",
    )
    c.add_argument(
        "--vsr-chunk-frames",
        type=int,
        default=None,
        help="frames per VSR chunk (default 8; 0 = the whole clip at once, needs far more memory)",
    )
    c.add_argument(
        "--vsr-chunk-overlap",
        type=int,
        default=0,
        help="frames shared by neighbouring chunks, blended linearly (default 0: LaVie's independent chunks)",
    )
    c.add_argument(
        "--vsr-tile",
        type=int,
        default=None,
        help="split frames into square tiles of this many low-res pixels (default: whole frames)",
    )
    c.add_argument(
        "--vsr-tile-overlap", type=int, default=0, help="low-res pixels shared by neighbouring tiles, blended"
    )
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


def check_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    for name in ("frames", "height", "width", "steps", "interp_steps", "vsr_steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    for name in ("guidance", "interp_guidance", "vsr_guidance"):
        value = getattr(args, name)
        if value is not None and value < 0:
            parser.error(f"--{name.replace('_', '-')} must be ≥ 0, got {value}")
    if args.fps is not None and args.fps <= 0:
        parser.error(f"--fps must be > 0, got {args.fps}")
    if args.model is None:
        use_default_model(args, parser)
    if not args.cascade:
        given = [f"--{n.replace('_', '-')}" for n in CASCADE_FLAGS if getattr(args, n) not in (None, 0)]
        if given:
            parser.error(f"{', '.join(given)} only apply with --cascade")


def use_default_model(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """No --model: the shipped cascade, every stage's folder from it unless given."""
    from lavie_jax import default_model

    try:
        root = default_model.path()
    except FileNotFoundError as err:
        parser.error(str(err))
    args.cascade = True
    args.model = root / "base"
    args.interp_model = args.interp_model or root / "interpolation"
    args.vsr_model = args.vsr_model or root / "vsr"
    print(f"using the default model in {root} (see --help)", file=sys.stderr)


def base_options(args) -> dict:
    """The base stage's `prepare` arguments from the command line (None: the model's default)."""
    return dict(
        num_frames=args.frames,
        height=args.height,
        width=args.width,
        steps=args.steps,
        guidance=args.guidance,
        sampler=args.sampler,
        negative_prompt=args.negative_prompt,
        fps=args.fps,
    )


def sample_base(args, parser, prompts: list[str]) -> int:
    from lavie_jax import media
    from lavie_jax.pipelines import base

    try:
        pipe = base.BasePipeline.from_pretrained(args.model, attention_impl=args.attention)
        request = pipe.prepare(prompts, **base_options(args))
    except ValueError as err:
        parser.error(str(err))

    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    compiled = pipe.compile(request, with_progress=True)
    print(f"compile: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    t0 = time.perf_counter()
    frames = pipe.run(compiled, request, seed=args.seed, progress_bar=True)
    print(f"sampling: {time.perf_counter() - t0:.1f} s for {len(prompts)} video(s)", file=sys.stderr)

    for prompt, video in zip(prompts, frames):
        stem = media.unique_stem(args.out, media.safe_stem(prompt), (".mp4", ".gif", ".png"))
        media.write_mp4(args.out / f"{stem}.mp4", video, request.fps)
        media.write_gif(args.out / f"{stem}.gif", video, request.fps)
        media.write_png(args.out / f"{stem}.png", media.contact_sheet(video))
        print(args.out / f"{stem}.mp4")
    return 0


def sample_cascade(args, parser, prompts: list[str]) -> int:
    from lavie_jax import media
    from lavie_jax.pipelines import cascade

    pipe = cascade.CascadePipeline(
        args.model, args.interp_model, args.vsr_model, attention_impl=args.attention
    )
    try:
        request = pipe.prepare(
            prompts,
            stages=args.stages or cascade.STAGES,
            seed=args.seed,
            seeds=dict(
                interpolation=args.seed if args.interp_seed is None else args.interp_seed,
                vsr=args.seed if args.vsr_seed is None else args.vsr_seed,
            ),
            base=base_options(args),
            interpolation=dict(steps=args.interp_steps, guidance=args.interp_guidance),
            vsr=dict(
                steps=args.vsr_steps,
                guidance=args.vsr_guidance,
                noise_level=args.vsr_noise_level,
                chunk_frames=args.vsr_chunk_frames,
                chunk_overlap=args.vsr_chunk_overlap,
                tile_size=args.vsr_tile,
                tile_overlap=args.vsr_tile_overlap,
            ),
        )
    except ValueError as err:
        parser.error(str(err))

    args.out.mkdir(parents=True, exist_ok=True)
    suffixes = tuple(f"_{s}{ext}" for s in cascade.STAGES for ext in (".mp4", ".gif", ".png"))
    stems = []  # chosen up front, so every stage of a prompt shares one name and none is overwritten
    for prompt in prompts:
        stem, first, n = media.safe_stem(prompt), media.safe_stem(prompt), 1
        while stem in stems or any((args.out / f"{stem}{s}").exists() for s in suffixes):
            n += 1
            stem = f"{first}-{n}"
        stems.append(stem)
    for result in pipe.run_stages(request, progress_bar=True):
        print(
            f"{result.stage}: load {result.load_s:.1f} s, compile {result.compile_s:.1f} s, "
            f"sampling {result.sample_s:.1f} s, peak RSS {result.peak_rss_gb:.2f} GB, "
            f"video {tuple(result.video.shape[1:])}",
            file=sys.stderr,
        )
        for stem, video in zip(stems, result.video):
            name = f"{stem}_{result.stage}"
            media.write_mp4(args.out / f"{name}.mp4", video, result.fps)
            media.write_gif(args.out / f"{name}.gif", video, result.fps)
            if result.stage == "base":
                media.write_png(args.out / f"{name}.png", media.contact_sheet(video))
            print(args.out / f"{name}.mp4")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    prompts = read_prompts(args, parser)
    check_args(args, parser)

    from lavie_jax import compilation_cache

    compilation_cache.enable()
    if args.cascade:
        return sample_cascade(args, parser, prompts)
    return sample_base(args, parser, prompts)


if __name__ == "__main__":
    sys.exit(main())
