"""Which source frames make a clip: F frames at a stride (or at a target frame rate) from a random start.

A clip needs ``span = (F - 1) · step + 1`` source frames, ``step`` being the stride in source frames
(``stride``) or ``source_fps / fps`` when a target rate is asked for (then positions are rounded to
the nearest frame, so a 30 fps source sampled at 8 fps takes frames 0, 4, 8, 11, 15, …). A source
with fewer frames than the span is skipped, looped or padded with its last frame, as configured.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lavie_jax.data import skipping

SHORT_POLICIES = ("skip", "loop", "pad")


@dataclasses.dataclass(frozen=True)
class FrameSampling:
    """How to pick a clip's frames from a video of ``n`` frames.

    num_frames:   F, frames per clip.
    stride:       take every ``stride``-th source frame (ignored when ``fps`` is set).
    fps:          sample at this frame rate instead (needs the source's rate); None = use the stride.
    short:        a source shorter than the span: 'skip' (the example is skipped, reason
                  ``too_short``), 'loop' (wrap around to frame 0) or 'pad' (repeat the last frame).
    random_start: draw the start uniformly; False = centre the window (deterministic).
    """

    num_frames: int
    stride: int = 1
    fps: float | None = None
    short: str = "skip"
    random_start: bool = True

    def __post_init__(self):
        if self.num_frames < 1:
            raise ValueError(f"FrameSampling: num_frames={self.num_frames}; expected ≥ 1")
        if self.stride < 1:
            raise ValueError(f"FrameSampling: stride={self.stride}; expected ≥ 1")
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"FrameSampling: fps={self.fps}; expected > 0 or None")
        if self.short not in SHORT_POLICIES:
            raise ValueError(f"FrameSampling: short={self.short!r}; expected one of {SHORT_POLICIES}")

    def step(self, source_fps: float | None) -> float:
        """Source frames between consecutive clip frames."""
        if self.fps is None:
            return float(self.stride)
        if not source_fps or source_fps <= 0:
            raise skipping.BadExample(
                "corrupt", f"fps sampling needs the source frame rate, got {source_fps}"
            )
        return source_fps / self.fps

    def indices(self, num_available: int, source_fps: float | None, rng: np.random.Generator) -> np.ndarray:
        """``(F,)`` int64 source-frame indices, non-decreasing, all in ``[0, num_available)``."""
        if num_available < 1:
            raise skipping.BadExample("corrupt", "the video has no frames")
        step = self.step(source_fps)
        offsets = np.floor(np.arange(self.num_frames) * step + 0.5).astype(np.int64)  # (F,) from the start
        span = int(offsets[-1]) + 1
        if span <= num_available:
            room = num_available - span  # the window may start anywhere in [0, room]
            start = int(rng.integers(0, room + 1)) if self.random_start else room // 2
            return start + offsets
        if self.short == "skip":
            raise skipping.BadExample("too_short", f"{num_available} frames; the clip needs {span}")
        if self.short == "loop":
            return offsets % num_available
        return np.minimum(offsets, num_available - 1)
