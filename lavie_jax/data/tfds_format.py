"""ArrayRecord datasets written and read with tensorflow-datasets — without TensorFlow.

Only `Tensor`, `Scalar`, `Sequence` and `Text` features are used (``tfds.features.Video/Image``
import TensorFlow). Two builders:

``lavie_media`` (configs ``jpeg`` | ``raw``), one example per video or image (an image is one frame):
    key (Text), caption (Text), fps (float32), frames: a sequence of JPEG bytes (``jpeg``), or one
    uint8 ``(N, H, W, 3)`` tensor, zlib-compressed (``raw``, lossless).
``lavie_latents`` (configs ``float32`` | ``float16``), one example per clip or image:
    key, caption, latent_mean / latent_logvar ``(N, h, w, c)`` (the frozen VAE's posterior, so
    training can sample), text_embedding ``(77, D)`` (the frozen text encoder's output).

Written to ``OUT/<builder>/<config>/1.0.0/``; `open_split` reads a split given that folder or any
folder above it. Text reads back as bytes (`text` decodes it).
"""

from __future__ import annotations

import os
import pathlib
import shutil
from collections.abc import Iterable

import numpy as np
import tensorflow_datasets as tfds

MEDIA_BUILDER = "lavie_media"
LATENT_BUILDER = "lavie_latents"
FRAME_FORMATS = ("jpeg", "raw")
LATENT_DTYPES = ("float32", "float16")


class _FromExamples(tfds.core.GeneratorBasedBuilder):
    """A builder whose single ``train`` split is an iterable of feature dicts given at construction."""

    def __init__(self, *, examples: Iterable[dict] = (), **kwargs):
        self._examples = examples
        super().__init__(**kwargs)

    # tfds looks for a checksums file next to the builder's source through `code_path`, which for
    # a class in an installed package probes `importlib_resources` (not a dependency here) and
    # fails. These builders download nothing: no source path, no checksums.
    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
        return None

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i, example in enumerate(self._examples):
            yield i, example  # the position is the key: ids (paths) may repeat across folders


class LavieMedia(_FromExamples):
    name = MEDIA_BUILDER
    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=f) for f in FRAME_FORMATS]

    def _info(self):
        if self.builder_config.name == "jpeg":
            frames = tfds.features.Sequence(tfds.features.Tensor(shape=(), dtype=np.object_))
        else:
            frames = tfds.features.Tensor(shape=(None, None, None, 3), dtype=np.uint8, encoding="zlib")
        features = {
            "key": tfds.features.Text(),
            "caption": tfds.features.Text(),
            "fps": tfds.features.Scalar(dtype=np.float32),
            "frames": frames,
        }
        return tfds.core.DatasetInfo(
            builder=self, features=tfds.features.FeaturesDict(features), disable_shuffling=True
        )


class LavieLatents(_FromExamples):
    name = LATENT_BUILDER
    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=d) for d in LATENT_DTYPES]

    def _info(self):
        dtype = np.dtype(self.builder_config.name)

        def tensor(rank):
            return tfds.features.Tensor(shape=(None,) * rank, dtype=dtype, encoding="bytes")

        features = {
            "key": tfds.features.Text(),
            "caption": tfds.features.Text(),
            "latent_mean": tensor(4),  # (N, h, w, c)
            "latent_logvar": tensor(4),
            "text_embedding": tensor(2),  # (77, D)
        }
        return tfds.core.DatasetInfo(
            builder=self, features=tfds.features.FeaturesDict(features), disable_shuffling=True
        )


def _build(cls, out, config: str, examples: Iterable[dict], overwrite: bool) -> pathlib.Path:
    out = pathlib.Path(out).absolute()
    target = out / cls.name / config
    if target.exists():
        if not overwrite:
            raise ValueError(f"{target} exists; pass overwrite=True (--overwrite) to replace it")
        shutil.rmtree(target)
    builder = cls(examples=examples, data_dir=str(out), config=config, file_format="array_record")
    builder.download_and_prepare(download_dir=str(out / "downloads"))
    return pathlib.Path(builder.data_dir)


def write_media(
    out: str | os.PathLike,
    examples: Iterable[dict],
    *,
    frame_format: str = "jpeg",
    jpeg_quality: int = 95,
    overwrite: bool = False,
) -> pathlib.Path:
    """`examples`: dicts with key, caption, fps and ``frames (N, H, W, 3)`` uint8. Returns the
    dataset folder (``OUT/lavie_media/<format>/1.0.0``)."""
    from lavie_jax.data import transforms

    if frame_format not in FRAME_FORMATS:
        raise ValueError(f"write_media: frame_format={frame_format!r}; expected one of {FRAME_FORMATS}")

    def encoded():
        for ex in examples:
            frames = np.asarray(ex["frames"], np.uint8)
            if frame_format == "jpeg":
                frames = [transforms.encode_jpeg(f, jpeg_quality) for f in frames]
            yield {"key": ex["key"], "caption": ex["caption"], "fps": np.float32(ex["fps"]), "frames": frames}

    return _build(LavieMedia, out, frame_format, encoded(), overwrite)


def write_latents(
    out: str | os.PathLike, examples: Iterable[dict], *, dtype: str = "float32", overwrite: bool = False
) -> pathlib.Path:
    """`examples`: dicts with key, caption, latent_mean, latent_logvar, text_embedding. Returns the
    dataset folder (``OUT/lavie_latents/<dtype>/1.0.0``)."""
    if dtype not in LATENT_DTYPES:
        raise ValueError(f"write_latents: dtype={dtype!r}; expected one of {LATENT_DTYPES}")

    def cast():
        for ex in examples:
            arrays = {k: np.asarray(ex[k], dtype) for k in ("latent_mean", "latent_logvar", "text_embedding")}
            yield {"key": ex["key"], "caption": ex["caption"], **arrays}

    return _build(LavieLatents, out, dtype, cast(), overwrite)


def find_dataset(path: str | os.PathLike, builder: str) -> pathlib.Path:
    """The folder holding ``dataset_info.json`` of `builder`: `path` itself or the one folder below it."""
    path = pathlib.Path(path)
    if (path / "dataset_info.json").is_file():
        return path
    found = sorted(p.parent for p in path.glob(f"**/{builder}/*/*/dataset_info.json"))
    if len(found) != 1:
        raise ValueError(
            f"path={str(path)!r}: expected one {builder} dataset (…/{builder}/<config>/<version>/) "
            f"below it, found {[str(p) for p in found]}"
        )
    return found[0]


def open_split(path: str | os.PathLike, builder: str, split: str = "train"):
    """Random-access data source (``len``, ``[i]`` → dict of numpy values) of one split."""
    return tfds.builder_from_directory(str(find_dataset(path, builder))).as_data_source(split=split)


def text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
