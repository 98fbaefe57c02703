"""Writing generated videos: mp4 (imageio-ffmpeg's bundled ffmpeg), gif (Pillow), PNG contact sheets.

Frames are uint8 ``(F, H, W, 3)``. File names derived from prompts are sanitised: no path separators,
no ``..``, bounded length, and never overwriting an existing file.
"""

from __future__ import annotations

import os
import pathlib
import re

import numpy as np
from PIL import Image

MAX_STEM = 80


def safe_stem(prompt: str, max_len: int = MAX_STEM) -> str:
    """A file-name stem from a prompt: ``[A-Za-z0-9._-]`` only, spaces → ``_``, no leading dots."""
    stem = re.sub(r"\s+", "_", prompt.strip())
    stem = re.sub(r"[^A-Za-z0-9._-]", "", stem)
    stem = re.sub(r"\.{2,}", ".", stem).lstrip(".-_")
    return stem[:max_len].rstrip(".") or "video"


def unique_stem(folder: str | os.PathLike, stem: str, suffixes: tuple[str, ...]) -> str:
    """`stem`, or `stem-2`, `stem-3`, … so that no ``stem<suffix>`` exists in `folder`."""
    folder = pathlib.Path(folder)
    candidate, n = stem, 1
    while any((folder / f"{candidate}{s}").exists() for s in suffixes):
        n += 1
        candidate = f"{stem}-{n}"
    return candidate


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (F, H, W, 3), got {frames.dtype} {frames.shape}")
    return frames


def write_mp4(path: str | os.PathLike, frames: np.ndarray, fps: float) -> None:
    import imageio.v2 as imageio

    frames = _check_frames(frames)
    # macro_block_size=1 keeps sizes that are not multiples of 16 exactly as generated.
    with imageio.get_writer(str(path), fps=fps, codec="libx264", macro_block_size=1, quality=8) as writer:
        for frame in frames:
            writer.append_data(frame)


def write_gif(path: str | os.PathLike, frames: np.ndarray, fps: float) -> None:
    frames = _check_frames(frames)
    images = [Image.fromarray(f) for f in frames]
    duration_ms = max(int(round(1000 / fps)), 20)
    images[0].save(str(path), save_all=True, append_images=images[1:], duration=duration_ms, loop=0)


def contact_sheet(frames: np.ndarray, columns: int = 8, pad: int = 2) -> np.ndarray:
    """All frames tiled in a grid (row-major), separated by `pad` white pixels."""
    frames = _check_frames(frames)
    f, h, w, _ = frames.shape
    columns = min(columns, f)
    rows = -(-f // columns)
    sheet = np.full((rows * (h + pad) - pad, columns * (w + pad) - pad, 3), 255, np.uint8)
    for i, frame in enumerate(frames):
        r, c = divmod(i, columns)
        sheet[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = frame
    return sheet


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    Image.fromarray(np.asarray(image, np.uint8)).save(str(path))
