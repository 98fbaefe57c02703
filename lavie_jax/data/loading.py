"""Records (see `sources`) → uint8 frames resized to cover the target size, or a `BadExample`.

`load_clip` gives a clip of ``sampling.num_frames`` frames; `load_still` one frame — the image of
an image record, or one random frame of a video record (joint training without an image set
draws its images from other videos). Only the frames used are decoded: PyAV seeks in video
files; of an encoded-frame record only the sampled JPEGs are decoded.
"""

from __future__ import annotations

import numpy as np

from lavie_jax.data import frame_sampling, skipping, transforms, video_decode

_ONE_FRAME = frame_sampling.FrameSampling(num_frames=1)


def read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError as e:
        raise skipping.BadExample("missing_file", path) from e
    except OSError as e:
        raise skipping.BadExample("corrupt", f"{path}: {e}") from e


def _encoded_frames(
    record: dict, sampling: frame_sampling.FrameSampling, rng: np.random.Generator, cover: tuple[int, int]
) -> np.ndarray:
    frames = record["frames"]
    indices = sampling.indices(len(frames), record.get("fps"), rng)
    if isinstance(frames, np.ndarray) and frames.dtype == np.uint8:
        clip = frames[indices]  # (F, H, W, 3)
    else:
        decoded = {int(i): transforms.decode_image(frames[int(i)]) for i in np.unique(indices)}
        clip = np.stack([decoded[int(i)] for i in indices])  # (F, H, W, 3)
    return transforms.resize_cover(clip, *cover)


def load_clip(
    record: dict,
    sampling: frame_sampling.FrameSampling,
    rng: np.random.Generator,
    cover: tuple[int, int],
    *,
    decode_threads: int = 1,
) -> np.ndarray:
    """``(F, h, w, 3)`` uint8 with ``h ≥ H, w ≥ W`` for ``cover=(H, W)``."""
    kind = record["kind"]
    if kind == "video_file":
        return video_decode.decode_clip(record["path"], sampling, rng, cover=cover, threads=decode_threads)
    if kind == "encoded_frames":
        return _encoded_frames(record, sampling, rng, cover)
    if kind == "image_file":
        raise ValueError(f"load_clip: source {record['source']!r} holds images; a video source is needed")
    raise ValueError(f"load_clip: record kind={kind!r}; expected 'video_file' or 'encoded_frames'")


def load_still(record: dict, rng: np.random.Generator, cover: tuple[int, int]) -> np.ndarray:
    """``(h, w, 3)`` uint8 with ``h ≥ H, w ≥ W`` for ``cover=(H, W)``."""
    kind = record["kind"]
    if kind == "image_file":
        return transforms.resize_cover(transforms.decode_image(read_bytes(record["path"])), *cover)
    if kind in ("video_file", "encoded_frames"):
        return load_clip(record, _ONE_FRAME, rng, cover)[0]
    raise ValueError(f"load_still: record kind={kind!r}; expected an image or video record")
