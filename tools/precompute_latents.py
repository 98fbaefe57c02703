r"""Encode a dataset once with a model folder's frozen VAE and text encoder; train from the result.

    python tools/precompute_latents.py --model converted/lavie_base --src data/synthetic \
        --kind synthetic --media video --out data/synthetic_latents --frames 16 --stride 3 \
        --height 320 --width 512
    python -m lavie_jax.train ... --config.data.precomputed=True --config.data.path=data/synthetic_latents

`--model` is a model folder (``vae/``, ``text_encoder/``, ``tokenizer/``; ``tools/convert_sd.py``).
Each video gives one clip (window centred in time, centre crop); each image a one-frame item. Stored
per item: the VAE posterior's mean and log-variance ``(F, h, w, c)`` (training samples from it) and
the caption's text embedding ``(77, D)``, as an ArrayRecord dataset
(``OUT/lavie_latents/<dtype>/1.0.0``, read by `lavie_jax.data.latents.LatentSource`). Bad files are
skipped and listed in ``OUT/skipped.jsonl``.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from lavie_jax.data import frame_sampling, latents, pipeline, skipping, tfds_format


def model_encoders(folder: str | pathlib.Path, *, frame_batch: int = 8):
    """``(encode_fn, text_fn)`` from a model folder: jitted VAE encode over fixed-size frame groups
    (one compilation; the last group zero-padded) and tokenizer + text encoder."""
    import jax
    from flax import nnx

    from lavie_jax.models import clip_text, tokenizer, vae

    folder = pathlib.Path(folder)
    vae_graphdef, vae_params = nnx.split(vae.load_vae(folder / "vae"))
    text_graphdef, text_params = nnx.split(clip_text.load_text_encoder(folder / "text_encoder"))
    tok = tokenizer.Tokenizer.from_folder(folder / "tokenizer")

    @jax.jit
    def encode_group(params, frames):  # (G, H, W, 3) → two (G, h, w, c)
        posterior = nnx.merge(vae_graphdef, params).encode(frames)
        return posterior.mean, posterior.logvar

    @jax.jit
    def embed(params, ids):  # (N, 77) → (N, 77, D)
        return nnx.merge(text_graphdef, params)(ids)

    def encode_fn(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = frames.shape[0]
        pad = -n % frame_batch
        padded = np.concatenate(
            [frames, np.zeros((pad, *frames.shape[1:]), frames.dtype)]
        )  # (n+pad, H, W, 3)
        outs = [encode_group(vae_params, padded[i : i + frame_batch]) for i in range(0, n + pad, frame_batch)]
        mean = np.concatenate([np.asarray(m) for m, _ in outs])[:n]  # (n, h, w, c)
        logvar = np.concatenate([np.asarray(v) for _, v in outs])[:n]
        return mean, logvar

    def text_fn(captions: list[str]) -> np.ndarray:
        return np.asarray(embed(text_params, tok(captions)))

    return encode_fn, text_fn


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="model folder with vae/, text_encoder/, tokenizer/")
    parser.add_argument("--src", required=True, help="dataset path (see --kind)")
    parser.add_argument("--kind", choices=("folder", "synthetic", "tfds"), default="folder")
    parser.add_argument("--media", choices=("video", "image"), default="video")
    parser.add_argument("--out", required=True, help="output data_dir")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--height", type=int, default=320)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--frame-batch", type=int, default=8, help="frames the VAE encodes at once")
    parser.add_argument("--dtype", choices=tfds_format.LATENT_DTYPES, default="float32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)

    (source,) = pipeline.open_sources(args.kind, args.src, media=args.media)
    encode_fn, text_fn = model_encoders(args.model, frame_batch=args.frame_batch)
    skip_log = skipping.SkipLog(args.out)
    items = latents.clip_items(
        source,
        sampling=frame_sampling.FrameSampling(args.frames, stride=args.stride, random_start=False),
        height=args.height,
        width=args.width,
        seed=args.seed,
        skip_log=skip_log,
    )
    folder = latents.precompute_latents(
        items, encode_fn, text_fn, args.out, dtype=args.dtype, overwrite=args.overwrite
    )
    written = len(latents.LatentSource(folder))
    print(f"{written} of {len(source)} items encoded to {folder}; skipped: {skip_log.counts() or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
