"""Data throughput: ``python tools/benchmark.py data [--clips N] [--workers 0,1,2] [--data DIR]``.

1. Decoded + transformed clips/s of the base stage (16 frames at stride 3, 320×512, float32 in
   [-1, 1]) from a folder of H.264 mp4s — by default 64-frame clips at WebVid's 336×596 of a
   panning random texture with grain noise (``--content shapes``: the synthetic set, which decodes
   faster) — with 0, 1 and 2 grain worker processes (batch 1, so a clip is the unit).
2. Batches/s from the precomputed-latent source at the base shape: B=8 examples of 16 clip latents
   + 4 image latents (40×64×4) with their 5 text embeddings (77×768), sampled and scaled.

Prints one line per configuration; compare them with ``tools/benchmark.py train`` (steps/s × batch
size = clips/s the train step consumes) to see whether training would wait on data.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

import numpy as np


def _rate(iterator, count: int) -> tuple[float, float]:
    """(items/s over `count` items after the first, seconds to the first item)."""
    start = time.perf_counter()
    next(iterator)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(count):
        next(iterator)
    return count / (time.perf_counter() - start), first


def textured_videos(folder: pathlib.Path, count: int) -> pathlib.Path:
    """`count` 64-frame 336×596 mp4s of a smooth random texture panning 2 px/frame plus grain noise:
    harder to decode than flat shapes, closer to filmed footage (keyframe every 24 frames)."""
    from PIL import Image

    from lavie_jax.data import synthetic

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = ["path,caption"]
    for i in range(count):
        coarse = rng.integers(0, 256, (40, 96, 3), dtype=np.uint8)
        texture = np.asarray(Image.fromarray(coarse).resize((596 + 2 * 64, 336), Image.BICUBIC), np.float32)
        frames = np.stack([texture[:, 2 * t : 2 * t + 596] for t in range(64)])  # (64, 336, 596, 3)
        frames = np.clip(frames + rng.normal(0, 4, frames.shape), 0, 255).astype(np.uint8)
        synthetic.write_mp4(folder / f"{i}.mp4", frames, fps=24, keyframe_every=24)
        rows.append(f"{i}.mp4,texture {i}")
    (folder / "videos.csv").write_text("\n".join(rows) + "\n")
    return folder


def bench_clips(folder: pathlib.Path, workers: int, args) -> None:
    from lavie_jax.data import frame_sampling, pipeline, skipping, sources

    videos = sources.FolderSource(folder, media="video", captions=folder / "videos.csv")
    ds = pipeline.joint_dataset(
        [videos],
        sampling=frame_sampling.FrameSampling(16, stride=3),
        spec=pipeline.ExampleSpec(height=320, width=512, pixel_dtype=args.pixel_dtype),
        shard_index=0,
        shard_count=1,
        loader_options=dict(skip_log=skipping.SkipLog(None), decode_threads=args.decode_threads),
    )
    iterator = iter(pipeline.batches(ds, 1, workers=workers, read_threads=args.read_threads))
    rate, first = _rate(iterator, args.clips)
    print(
        f"clips 16×320×512 {args.pixel_dtype}, workers={workers}, read_threads={args.read_threads}, "
        f"decode_threads={args.decode_threads}: {rate:6.2f} clips/s  (first clip after {first:.1f} s)"
    )
    del iterator  # stops the worker processes


def bench_latents(root: pathlib.Path, args) -> None:
    from lavie_jax.data import latents, pipeline, tfds_format

    rng = np.random.default_rng(0)

    def items(n, frames):
        for i in range(n):
            mean = rng.normal(size=(frames, 40, 64, 4)).astype(np.float32)
            yield {
                "key": f"{frames}-{i}",
                "caption": f"caption {i}",
                "latent_mean": mean,
                "latent_logvar": -np.abs(mean),
                "text_embedding": rng.normal(size=(77, 768)).astype(np.float32),
            }

    videos = latents.LatentSource(tfds_format.write_latents(root / "v", items(args.latent_items, 16)))
    images = latents.LatentSource(tfds_format.write_latents(root / "i", items(args.latent_items, 1)))
    ds = pipeline.latent_dataset(
        [videos],
        images=[images],
        num_frames=16,
        num_images=4,
        scaling_factor=0.18215,
        shard_index=0,
        shard_count=1,
    )
    iterator = iter(pipeline.batches(ds, 8, read_threads=args.read_threads))
    rate, _ = _rate(iterator, args.latent_batches)
    print(
        f"latents B=8 × (16+4)×40×64×4 + 5×77×768, sampled: {rate:6.2f} batches/s ({8 * rate:.1f} examples/s)"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=None, help="a video folder with videos.csv (default: made here)")
    parser.add_argument(
        "--content", choices=("textured", "shapes"), default="textured", help="made videos show"
    )
    parser.add_argument("--videos", type=int, default=8, help="synthetic clips to make")
    parser.add_argument("--clips", type=int, default=24, help="clips timed per configuration")
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--read-threads", type=int, default=1)
    parser.add_argument("--decode-threads", type=int, default=1)
    parser.add_argument("--pixel-dtype", choices=("float32", "uint8"), default="float32")
    parser.add_argument("--latent-items", type=int, default=32)
    parser.add_argument("--latent-batches", type=int, default=20)
    args = parser.parse_args(argv)

    from absl import flags

    if not flags.FLAGS.is_parsed():  # grain's worker processes read absl flags
        flags.FLAGS(sys.argv[:1])

    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        if args.data:
            folder = pathlib.Path(args.data)
        else:
            from lavie_jax.data import synthetic

            start = time.perf_counter()
            if args.content == "shapes":
                folder = synthetic.write_dataset(
                    tmp / "videos",
                    videos=args.videos,
                    images=0,
                    num_frames=64,
                    height=336,
                    width=596,
                    fps=24,
                    keyframe_every=24,
                )
            else:
                folder = textured_videos(tmp / "videos", args.videos)
            size = sum(p.stat().st_size for p in folder.glob("*/*.mp4")) + sum(
                p.stat().st_size for p in folder.glob("*.mp4")
            )
            print(
                f"made {args.videos} {args.content} 64×336×596 mp4s ({size / args.videos / 1e6:.2f} MB each) "
                f"in {time.perf_counter() - start:.1f} s"
            )
        for workers in (int(w) for w in args.workers.split(",")):
            bench_clips(folder, workers, args)
        bench_latents(tmp / "latents", args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
