r"""Write the synthetic captioned video set (coloured shapes moving across a plain background).

    python tools/make_synthetic_data.py --out data/synthetic --videos 512 --images 512 \
        --frames 16 --height 64 --width 64 --seed 0

Prints the folder layout it wrote (see `lavie_jax.data.synthetic`): ``videos/*.mp4`` with
``videos.csv`` (path, caption, shape, color, direction, speed) and ``images/*.png`` with
``images.jsonl``. The same seed gives the same set.
"""

from __future__ import annotations

import argparse
import sys
import time

from lavie_jax.data import synthetic


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--videos", type=int, default=256, help="number of clips")
    parser.add_argument("--images", type=int, default=256, help="number of still images")
    parser.add_argument("--frames", type=int, default=16, help="frames per clip")
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--fps", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    out = synthetic.write_dataset(
        args.out,
        videos=args.videos,
        images=args.images,
        num_frames=args.frames,
        height=args.height,
        width=args.width,
        fps=args.fps,
        seed=args.seed,
    )
    print(
        f"wrote {args.videos} clips ({args.frames}×{args.height}×{args.width} @ {args.fps:g} fps) and "
        f"{args.images} images to {out} in {time.perf_counter() - start:.1f} s: "
        "videos/ + videos.csv, images/ + images.jsonl"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
