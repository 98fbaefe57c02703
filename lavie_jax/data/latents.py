"""Precomputed latents: run the frozen encoders over a dataset once, train from the stored outputs.

Writing: `clip_items` turns a media source into one deterministic clip per record (window centred
in time, centre crop, float32 [-1, 1]; bad records logged and left out), `precompute_latents` runs
``encode_fn(frames (N, H, W, 3)) -> (mean, logvar) (N, h, w, c)`` and ``text_fn(list[str]) ->
(N, 77, D)`` on them and writes an ArrayRecord dataset (`tfds_format.write_latents`). The VAE's
mean *and* log-variance are kept, so training still samples ``z = mean + exp(logvar/2)·ε``.

Reading: `LatentSource` is a random-access source of ``kind='latents'`` records (clips, or images
stored as 1-frame clips); `LatentJoiner` is the grain map that builds a joint example from one clip
record and M still records — an image's latent, or one random frame of another clip's:

    latent_mean, latent_logvar  (F+M, h, w, c) float32     (without a scaling factor), or
    latents                     (F+M, h, w, c) float32     sampled and × scaling_factor
    text_embeddings             (1+M, 77, D)   float32     clip caption first
    captions                    (1+M,)         object array of str
    source, key                 str
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from lavie_jax.data import frame_sampling, loading, skipping, tfds_format, transforms


class LatentSource:
    """An ArrayRecord latent dataset (``tools/precompute_latents.py``) read with tfds."""

    def __init__(self, path: str | os.PathLike, *, split: str = "train", name: str | None = None):
        self._data = tfds_format.open_split(path, tfds_format.LATENT_BUILDER, split)
        self.name = name or f"latents:{pathlib.Path(path).name}"
        if len(self._data) == 0:
            raise ValueError(f"LatentSource: {str(path)!r} has no examples")

    @property
    def num_frames(self) -> int:
        return int(self._data[0]["latent_mean"].shape[0])

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, index: int) -> dict:
        example = self._data[index]
        return {
            "kind": "latents",
            "source": self.name,
            "index": int(index),
            "key": tfds_format.text(example["key"]),
            "caption": tfds_format.text(example["caption"]),
            "latent_mean": example["latent_mean"],  # (N, h, w, c)
            "latent_logvar": example["latent_logvar"],
            "text_embedding": example["text_embedding"],  # (77, D)
        }

    def __repr__(self) -> str:
        return f"LatentSource({self.name!r}, {len(self)} items)"


class LatentJoiner:
    """grain random map: ``(clip record, [M still records]), rng`` → the joint example above."""

    def __init__(self, num_frames: int, scaling_factor: float | None = None):
        self.num_frames, self.scaling_factor = num_frames, scaling_factor

    def __call__(self, element: tuple[dict, list[dict]], rng: np.random.Generator) -> dict:
        record, stills = element
        if record["latent_mean"].shape[0] != self.num_frames:
            raise ValueError(
                f"latents of {record['source']!r}/{record['key']!r} have {record['latent_mean'].shape[0]} "
                f"frames; num_frames={self.num_frames} (precompute with the training clip length)"
            )
        means, logvars = [record["latent_mean"]], [record["latent_logvar"]]
        for still in stills:
            j = int(rng.integers(still["latent_mean"].shape[0]))  # an image, or one frame of a clip
            means.append(still["latent_mean"][j : j + 1])
            logvars.append(still["latent_logvar"][j : j + 1])
        mean = np.concatenate(means).astype(np.float32)  # (F+M, h, w, c)
        logvar = np.concatenate(logvars).astype(np.float32)
        example = {
            "text_embeddings": np.stack([r["text_embedding"] for r in (record, *stills)]).astype(np.float32),
            "captions": np.array([r["caption"] for r in (record, *stills)], dtype=object),
            "source": record["source"],
            "key": record["key"],
        }  # text_embeddings: (1+M, 77, D)
        if self.scaling_factor is None:
            example["latent_mean"], example["latent_logvar"] = mean, logvar
        else:
            eps = rng.standard_normal(mean.shape, dtype=np.float32)
            example["latents"] = (mean + np.exp(0.5 * logvar) * eps) * np.float32(self.scaling_factor)
        return example


def clip_items(
    source,
    *,
    sampling: frame_sampling.FrameSampling,
    height: int,
    width: int,
    seed: int = 0,
    skip_log: skipping.SkipLog | None = None,
) -> Iterator[dict]:
    """One clip per record, in source order: ``{key, caption, frames (F, H, W, 3) float32 [-1, 1]}``
    (images: F = 1). Deterministic: record i's draws come from ``default_rng([seed, i])``."""
    for i in range(len(source)):
        record = source[i]
        rng = np.random.default_rng([seed, i])
        try:
            caption = skipping.check_caption(record["caption"])
            if record["kind"] == "image_file":
                frames = loading.load_still(record, rng, (height, width))[None]  # (1, h, w, 3)
            else:
                frames = loading.load_clip(record, sampling, rng, (height, width))  # (F, h, w, 3)
        except skipping.BadExample as e:
            if skip_log is not None:
                skip_log.record(
                    source=record["source"],
                    key=record["key"],
                    path=record.get("path", record["key"]),
                    reason=e.reason,
                    detail=e.detail,
                )
            continue
        top, left = transforms.crop_origin(*frames.shape[1:3], height, width, None)
        frames = transforms.to_unit_range(
            np.ascontiguousarray(transforms.crop(frames, top, left, height, width))
        )
        yield {"key": record["key"], "caption": caption, "frames": frames}


def precompute_latents(
    items: Iterable[dict],
    encode_fn: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    text_fn: Callable[[list[str]], np.ndarray],
    out: str | os.PathLike,
    *,
    dtype: str = "float32",
    overwrite: bool = False,
) -> pathlib.Path:
    """Encode every item of `clip_items` and write the latent dataset; returns its folder."""

    def encoded():
        for item in items:
            frames = item["frames"]  # (F, H, W, 3)
            mean, logvar = (np.asarray(a) for a in encode_fn(frames))  # (F, h, w, c) each
            if mean.shape != logvar.shape or mean.ndim != 4 or mean.shape[0] != frames.shape[0]:
                raise ValueError(
                    f"encode_fn returned {mean.shape} and {logvar.shape} for frames {frames.shape}; "
                    "expected two (F, h, w, c) arrays"
                )
            embedding = np.asarray(text_fn([item["caption"]]))
            if embedding.ndim != 3 or embedding.shape[0] != 1:
                raise ValueError(f"text_fn returned {embedding.shape} for one caption; expected (1, 77, D)")
            yield {
                "key": item["key"],
                "caption": item["caption"],
                "latent_mean": mean,
                "latent_logvar": logvar,
                "text_embedding": embedding[0],
            }

    return tfds_format.write_latents(out, encoded(), dtype=dtype, overwrite=overwrite)
