"""Videos between stages: the model range [-1, 1] in, uint8 or [0, 1] out, always ``(B, F, H, W, 3)``."""

from __future__ import annotations

import numpy as np

OUTPUTS = ("uint8", "float")


def to_model_range(video, *, what: str = "video") -> np.ndarray:
    """uint8 in 0..255 (``x/255·2 − 1``, as LaVie reads its mp4s) or float already in [-1, 1] →
    float32 ``(B, F, H, W, 3)`` in [-1, 1]."""
    video = np.asarray(video)
    if video.ndim != 5 or video.shape[-1] != 3:
        raise ValueError(f"{what} of shape {video.shape}: expected (B, F, H, W, 3)")
    if video.dtype == np.uint8:
        return video.astype(np.float32) / 255.0 * 2.0 - 1.0
    if not np.issubdtype(video.dtype, np.floating):
        raise ValueError(f"{what} of dtype {video.dtype}: expected uint8 or float in [-1, 1]")
    lo, hi = float(video.min()), float(video.max())
    if lo < -1.0 - 1e-3 or hi > 1.0 + 1e-3:
        raise ValueError(f"{what}: float values in [{lo:.3f}, {hi:.3f}]; expected [-1, 1] (or pass uint8)")
    return video.astype(np.float32)


def check_output(output: str) -> None:
    if output not in OUTPUTS:
        raise ValueError(f"output={output!r}: expected one of {OUTPUTS}")


def finish(video01, output: str) -> np.ndarray:
    """A decoded video in [0, 1] → `output`: "float" as is, or "uint8" with LaVie's rounding
    ``⌊x·255 + 0.5⌋`` clipped to 0..255."""
    check_output(output)
    video = np.asarray(video01)
    if output == "float":
        return video
    return np.clip(np.floor(video * 255 + 0.5), 0, 255).astype(np.uint8)
