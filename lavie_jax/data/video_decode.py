"""Reading clips from video files with PyAV without decoding the whole file.

`decode_clip` opens the file once, reads the frame count and rate from the container, lets a
`FrameSampling` choose the source-frame indices, seeks to the keyframe at or before the first one,
and decodes forward only until the last one, converting (and resizing, in swscale, in the same
pass) just the frames it keeps. Frame i is the one displayed at ``i / fps`` after the stream start;
each wanted index takes the first decoded frame at or after it (exact for constant-rate video,
the nearest later frame where a variable-rate stream has gaps).

Failures raise `skipping.BadExample`: ``missing_file``, ``empty``, ``corrupt`` (cannot open, no
video stream, no frames) and ``truncated`` (opens, but a needed frame is undecodable or missing).
"""

from __future__ import annotations

import dataclasses
import os

import av
import numpy as np

from lavie_jax.data import frame_sampling, skipping, transforms


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    num_frames: int
    fps: float
    height: int
    width: int


def _open(path: str | os.PathLike):
    """The open container and its first video stream, or a `BadExample`."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError as e:
        raise skipping.BadExample("missing_file", str(path)) from e
    except OSError as e:
        raise skipping.BadExample("corrupt", f"{path}: {e}") from e
    if size == 0:
        raise skipping.BadExample("empty", f"{path} has 0 bytes")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as e:
        raise skipping.BadExample("corrupt", f"cannot open {path}: {e}") from e
    if not container.streams.video:
        container.close()
        raise skipping.BadExample("corrupt", f"{path} has no video stream")
    return container, container.streams.video[0]


def _info(container, stream) -> VideoInfo:
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate else 0.0
    num_frames = int(stream.frames or 0)
    if num_frames <= 0 and fps > 0:  # no frame count in the header: estimate it from the duration
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
        else:
            seconds = (container.duration or 0) / av.time_base
        num_frames = int(round(seconds * fps))
    if num_frames <= 0 or fps <= 0:
        raise skipping.BadExample("corrupt", f"no frames (frames={stream.frames}, fps={fps})")
    return VideoInfo(num_frames, fps, stream.codec_context.height, stream.codec_context.width)


def probe(path: str | os.PathLike) -> VideoInfo:
    """Frame count, rate and size from the container header (nothing is decoded)."""
    container, stream = _open(path)
    with container:
        return _info(container, stream)


def _read(
    container, stream, info: VideoInfo, indices: np.ndarray, size: tuple[int, int] | None
) -> np.ndarray:
    """``(len(indices), h, w, 3)`` uint8 for sorted-or-not `indices` (repeats allowed)."""
    wanted = np.unique(indices)  # ascending
    start = stream.start_time or 0
    if wanted[0] > 0:  # lands on the keyframe at or before the first wanted frame
        target = start + int(wanted[0] / info.fps / stream.time_base)
        container.seek(target, stream=stream, backward=True, any_frame=False)
    out_h, out_w = size or (info.height, info.width)
    got: dict[int, np.ndarray] = {}
    k = 0
    try:
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            position = int(round(float((frame.pts - start) * stream.time_base) * info.fps))
            while k < len(wanted) and position >= wanted[k]:
                got[int(wanted[k])] = frame.to_ndarray(
                    format="rgb24", width=out_w, height=out_h, interpolation="BILINEAR"
                )
                k += 1
            if k == len(wanted):
                break
    except av.FFmpegError as e:
        raise skipping.BadExample(
            "truncated", f"decoding stopped before frame {wanted[k]} of {info.num_frames}: {e}"
        ) from e
    if k < len(wanted):
        raise skipping.BadExample(
            "truncated", f"the stream ended before frame {wanted[k]} of the {info.num_frames} announced"
        )
    return np.stack([got[int(i)] for i in indices])  # (F, h, w, 3)


def decode_clip(
    path: str | os.PathLike,
    sampling: frame_sampling.FrameSampling,
    rng: np.random.Generator,
    *,
    cover: tuple[int, int] | None = None,
    threads: int = 1,
) -> np.ndarray:
    """``(F, h, w, 3)`` uint8 frames chosen by `sampling`; with ``cover=(H, W)`` resized (aspect
    kept) to `transforms.cover_size`, ready for an ``H × W`` crop. `threads`: decoder threads
    (0 = FFmpeg's choice; 1 keeps one core per grain worker)."""
    container, stream = _open(path)
    with container:
        if threads != 1:
            stream.thread_type, stream.thread_count = "AUTO", threads
        info = _info(container, stream)
        indices = sampling.indices(info.num_frames, info.fps, rng)
        size = transforms.cover_size(info.height, info.width, *cover) if cover else None
        return _read(container, stream, info, indices, size)


def read_all(path: str | os.PathLike) -> tuple[np.ndarray, VideoInfo]:
    """Every frame ``(N, H, W, 3)`` uint8 and the header info (for building datasets)."""
    container, stream = _open(path)
    with container:
        info = _info(container, stream)
        return _read(container, stream, info, np.arange(info.num_frames), None), info
