"""The grain pipeline: sources → joint examples → batches, sharded per host, checkpointable.

    per source:  records[shard_index::shard_count] → shuffle(seed) → repeat (reshuffled each epoch)
    clips:       mix(video sources, video_weights)                     one record per example
    stills:      mix(image sources, image_weights), or of the video sources with another seed
                 ("frames of other videos"), grouped M at a time
    examples:    zip(clips, stills) → random_map(JointLoader): decode, crop, caption → dict | None
    batches:     to_iter_dataset (drops the None of a bad example: the next good one takes its
                 slot, deterministically) → batch(B) → mp_prefetch(workers) when workers ≥ 1

Everything random derives from one seed and the element index, so the same seed gives the same
batches, and ``iterator.get_state()`` / ``set_state()`` (grain's checkpoint handler, saved with
the train state) resumes at exactly the next batch. Bad examples: see `skipping` (logged to
``skipped.jsonl``, counted by reason; a source that is mostly bad raises `TooManyBadExamples`
instead of looping forever). Example dict keys: `samples` (pixels), `latents` (precomputed).

Worker processes (``workers ≥ 1``) need the caller's script under ``if __name__ == "__main__":``
and absl flags parsed (``absl.flags.FLAGS(sys.argv[:1])``) before the first ``next``.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Callable, Sequence

import grain
import numpy as np
from grain.experimental import ZipMapDataset

from lavie_jax.data import frame_sampling, latents, loading, samples, skipping, sources


@dataclasses.dataclass(frozen=True)
class ExampleSpec:
    """The shape of an example: stage (`samples.STAGES`), frame size, M images, augmentation."""

    stage: str = "base"
    height: int = 320
    width: int = 512
    num_images: int = 0
    random_crop: bool = True
    flip: bool = False
    pixel_dtype: str = "float32"  # 'float32' ([-1, 1]) | 'uint8' (4× smaller batches; the step scales)

    def check(self, num_frames: int) -> None:
        samples.check_stage(self.stage, num_frames, self.height, self.width, self.pixel_dtype)
        if self.num_images < 0:
            raise ValueError(f"num_images={self.num_images}; expected ≥ 0")


def derive_seed(seed: int, *tags: int) -> int:
    """An independent int seed for one use of `seed` (NumPy's SeedSequence mixing)."""
    return int(np.random.SeedSequence([seed, *tags]).generate_state(1)[0])


def host_shard(shard_index: int | None, shard_count: int | None) -> tuple[int, int]:
    """``(index, count)``: the given values, or this host's ``jax.process_index/process_count``."""
    if shard_index is None or shard_count is None:
        import jax

        shard_index = jax.process_index() if shard_index is None else shard_index
        shard_count = jax.process_count() if shard_count is None else shard_count
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard_index={shard_index}, shard_count={shard_count}; expected 0 ≤ index < count")
    return shard_index, shard_count


def record_stream(
    srcs: Sequence,
    weights: Sequence[float] | None,
    *,
    seed: int,
    shuffle: bool = True,
    shard: tuple[int, int] = (0, 1),
    num_epochs: int | None = None,
) -> grain.MapDataset:
    """Records of this host's shard of every source, shuffled, repeated and mixed by `weights`.

    With ``num_epochs`` set and several sources, the mix ends when its first source runs out."""
    if not srcs:
        raise ValueError("record_stream: no sources given")
    if weights is not None and (len(weights) != len(srcs) or any(w <= 0 for w in weights)):
        raise ValueError(f"weights={list(weights)}; expected {len(srcs)} positive numbers (one per source)")
    index, count = shard
    parts = []
    for i, src in enumerate(srcs):
        ds = grain.MapDataset.source(src)[index::count]  # disjoint slices across hosts
        if len(ds) == 0:
            raise ValueError(f"source {src.name!r} ({len(src)} items) has none for shard {index} of {count}")
        if shuffle:
            ds = ds.shuffle(seed=derive_seed(seed, i))
        parts.append(ds.repeat(num_epochs))
    if len(parts) == 1:
        return parts[0]
    return grain.MapDataset.mix(parts, weights=list(weights) if weights is not None else None)


def _without_stills(record: dict) -> tuple[dict, list]:
    return record, []


def join(clips: grain.MapDataset, stills: grain.MapDataset | None, num_images: int) -> grain.MapDataset:
    """``(clip record, [M still records])`` pairs: example i takes stills ``i·M … i·M+M−1``."""
    if num_images == 0 or stills is None:
        return clips.map(_without_stills)
    groups = stills.batch(num_images, drop_remainder=True, batch_fn=list)
    n = min(len(clips), len(groups))
    return ZipMapDataset([clips[:n], groups[:n]])


class JointLoader:
    """grain random map: ``(clip record, [still records]), rng`` → example dict, or None when a
    part is bad (logged, counted, and checked against the bad fraction of its source)."""

    def __init__(
        self,
        sampling: frame_sampling.FrameSampling,
        spec: ExampleSpec,
        *,
        tokenize: Callable[[list[str]], np.ndarray] | None = None,
        skip_log: skipping.SkipLog | None = None,
        guard: skipping.BadFractionGuard | None = None,
        decode_threads: int = 1,
    ):
        self.sampling, self.spec, self.tokenize = sampling, spec, tokenize
        self.skip_log = skip_log if skip_log is not None else skipping.SkipLog(None)
        self.guard = guard if guard is not None else skipping.BadFractionGuard(max_fraction=0.2)
        self.decode_threads = decode_threads

    def _attempt(self, record: dict, load: Callable[[], np.ndarray]):
        try:
            caption = skipping.check_caption(record["caption"])
            pixels = load()
        except skipping.BadExample as e:
            path = record.get("path", record["key"])
            self.skip_log.record(
                source=record["source"], key=record["key"], path=path, reason=e.reason, detail=e.detail
            )
            self.guard.observe(record["source"], f"{path} ({e.reason})")
            return None
        self.guard.observe(record["source"])
        return pixels, caption

    def __call__(self, element: tuple[dict, list[dict]], rng: np.random.Generator) -> dict | None:
        record, still_records = element
        cover = (self.spec.height, self.spec.width)
        stills, captions = [], []
        for r in still_records:  # the cheap parts first: a bad image costs no video decode
            loaded = self._attempt(r, lambda r=r: loading.load_still(r, rng, cover))
            if loaded is None:
                return None
            stills.append(loaded[0])
            captions.append(loaded[1])
        loaded = self._attempt(
            record,
            lambda: loading.load_clip(record, self.sampling, rng, cover, decode_threads=self.decode_threads),
        )
        if loaded is None:
            return None
        example = samples.make_example(
            loaded[0],
            stills,
            [loaded[1], *captions],
            rng,
            stage=self.spec.stage,
            height=self.spec.height,
            width=self.spec.width,
            random_crop=self.spec.random_crop,
            flip=self.spec.flip,
            pixel_dtype=self.spec.pixel_dtype,
            tokenize=self.tokenize,
        )
        example["source"], example["key"] = record["source"], record["key"]
        return example


def joint_dataset(
    videos: Sequence,
    *,
    sampling: frame_sampling.FrameSampling,
    spec: ExampleSpec,
    images: Sequence = (),
    video_weights: Sequence[float] | None = None,
    image_weights: Sequence[float] | None = None,
    seed: int = 0,
    shuffle: bool = True,
    shard_index: int | None = None,
    shard_count: int | None = None,
    num_epochs: int | None = None,
    loader_options: dict | None = None,
) -> grain.MapDataset:
    """Joint examples (`samples` keys) or None for bad ones; `loader_options` go to `JointLoader`
    (tokenize, skip_log, guard, decode_threads)."""
    spec.check(sampling.num_frames)
    shard = host_shard(shard_index, shard_count)
    stream = dict(shuffle=shuffle, shard=shard, num_epochs=num_epochs)
    clips = record_stream(videos, video_weights, seed=derive_seed(seed, 1), **stream)
    stills = None
    if spec.num_images:
        if images:
            stills = record_stream(images, image_weights, seed=derive_seed(seed, 2), **stream)
        else:  # frames of other videos: the video sources in another order
            stills = record_stream(videos, video_weights, seed=derive_seed(seed, 3), **stream)
    loader = JointLoader(sampling, spec, **(loader_options or {}))
    return join(clips, stills, spec.num_images).random_map(loader, seed=derive_seed(seed, 4))


def latent_dataset(
    videos: Sequence[latents.LatentSource],
    *,
    num_frames: int,
    num_images: int = 0,
    images: Sequence[latents.LatentSource] = (),
    video_weights: Sequence[float] | None = None,
    image_weights: Sequence[float] | None = None,
    scaling_factor: float | None = None,
    seed: int = 0,
    shuffle: bool = True,
    shard_index: int | None = None,
    shard_count: int | None = None,
    num_epochs: int | None = None,
) -> grain.MapDataset:
    """Joint examples of precomputed latents (`latents` module docstring)."""
    shard = host_shard(shard_index, shard_count)
    stream = dict(shuffle=shuffle, shard=shard, num_epochs=num_epochs)
    clips = record_stream(videos, video_weights, seed=derive_seed(seed, 1), **stream)
    stills = None
    if num_images:
        pool, weights, tag = (images, image_weights, 2) if images else (videos, video_weights, 3)
        stills = record_stream(pool, weights, seed=derive_seed(seed, tag), **stream)
    joiner = latents.LatentJoiner(num_frames, scaling_factor)
    return join(clips, stills, num_images).random_map(joiner, seed=derive_seed(seed, 4))


def batches(
    dataset: grain.MapDataset,
    batch_size: int,
    *,
    workers: int = 0,
    read_threads: int = 1,
    prefetch_batches: int = 2,
) -> grain.IterDataset:
    """Batches (dicts of numpy arrays, a new leading axis B); ``iter()`` it for a checkpointable
    iterator. `read_threads` decode ahead in each process (0 = on demand); `workers` processes."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}; expected ≥ 1")
    if workers < 0 or read_threads < 0 or prefetch_batches < 0:
        raise ValueError(
            f"workers={workers}, read_threads={read_threads}, prefetch_batches={prefetch_batches}; "
            "expected ≥ 0"
        )
    read = grain.ReadOptions(
        num_threads=read_threads, prefetch_buffer_size=max(1, prefetch_batches) * batch_size
    )
    ds = dataset.to_iter_dataset(read).batch(batch_size, drop_remainder=True)  # Nones already dropped
    if workers:
        options = grain.MultiprocessingOptions(
            num_workers=workers, per_worker_buffer_size=max(1, prefetch_batches)
        )
        ds = ds.mp_prefetch(options)
    return ds


def open_sources(kind: str, paths: str | Sequence[str], *, media: str = "video") -> list:
    """Sources from paths: ``folder`` (a folder with ``videos.csv|jsonl`` / ``images.csv|jsonl``, or
    sidecar .txt captions; or a .csv/.jsonl table whose paths are relative to its folder),
    ``synthetic`` (a `synthetic.write_dataset` folder), ``tfds`` (media) or ``latents``."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    out = []
    for p in paths:
        if not str(p):
            raise ValueError(f"data path is empty (kind={kind!r}); expected a dataset folder or table")
        p = pathlib.Path(p)
        if kind == "latents":
            out.append(latents.LatentSource(p))
        elif kind == "tfds":
            out.append(sources.TfdsSource(p))
        elif kind in ("folder", "synthetic"):
            if p.is_file():
                out.append(sources.FolderSource(p.parent, media=media, captions=p))
                continue
            if not p.is_dir():
                hint = " (write one with tools/make_synthetic_data.py)" if kind == "synthetic" else ""
                raise ValueError(f"data path {str(p)!r} does not exist{hint}")
            tables = [p / f"{media}s{ext}" for ext in (".csv", ".jsonl") if (p / f"{media}s{ext}").is_file()]
            out.append(sources.FolderSource(p, media=media, captions=tables[0] if tables else None))
        else:
            raise ValueError(
                f"data source kind={kind!r}; expected 'folder', 'synthetic', 'tfds' or 'latents'"
            )
    return out


def make_train_iterator(
    *,
    batch_size: int,
    num_frames: int,
    height: int,
    width: int,
    num_images: int,
    path: str | Sequence[str],
    source: str = "folder",
    image_path: str | Sequence[str] = "",
    weights: Sequence[float] | None = None,
    image_weights: Sequence[float] | None = None,
    precomputed: bool = False,
    latent_scaling_factor: float | None = None,
    stage: str = "base",
    frame_stride: int = 1,
    seed: int = 0,
    workers: int = 0,
    workdir: str | os.PathLike | None = None,
    tokenize: Callable[[list[str]], np.ndarray] | None = None,
    max_bad_fraction: float = 0.2,
    shard_index: int | None = None,
    shard_count: int | None = None,
):
    """The trainer's host-local iterator (``next`` → a batch dict; ``get_state/set_state``).

    `path` / `image_path`: one or several datasets of kind `source` (`open_sources`), mixed by
    `weights` / `image_weights`; ``precomputed=True`` reads latent datasets (kind 'latents') and,
    with `latent_scaling_factor`, yields sampled, scaled ``latents``. Skipped examples go to
    ``workdir/skipped.jsonl``."""
    kind = "latents" if precomputed else source
    videos = open_sources(kind, path, media="video")
    images = open_sources(kind, image_path, media="image") if image_path else []
    shard = dict(shard_index=shard_index, shard_count=shard_count)
    if precomputed:
        dataset = latent_dataset(
            videos,
            num_frames=num_frames,
            num_images=num_images,
            images=images,
            video_weights=weights,
            image_weights=image_weights,
            scaling_factor=latent_scaling_factor,
            seed=seed,
            **shard,
        )
    else:
        options = dict(
            tokenize=tokenize,
            skip_log=skipping.SkipLog(workdir),
            guard=skipping.BadFractionGuard(max_bad_fraction),
        )
        dataset = joint_dataset(
            videos,
            sampling=frame_sampling.FrameSampling(num_frames, stride=frame_stride),
            spec=ExampleSpec(stage=stage, height=height, width=width, num_images=num_images),
            images=images,
            video_weights=weights,
            image_weights=image_weights,
            seed=seed,
            loader_options=options,
            **shard,
        )
    return iter(batches(dataset, batch_size, workers=workers))
