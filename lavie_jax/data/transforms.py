"""Frame transforms: resize to cover the target, crop, flip, scale to [-1, 1], ×k area downsampling.

Frames are channels-last uint8 ``(..., H, W, 3)`` until `to_unit_range`. "Resize the short side"
generalises to non-square targets as: scale so the frame *covers* ``height × width`` (the smaller
of the two scale factors would leave a border), then crop — for a square target this is exactly
resizing the short side.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from lavie_jax.data import skipping


def cover_size(h: int, w: int, height: int, width: int) -> tuple[int, int]:
    """The size a ``h × w`` frame is resized to (aspect kept) so that it covers ``height × width``."""
    scale = max(height / h, width / w)
    return max(height, int(round(h * scale))), max(width, int(round(w * scale)))


def resize_cover(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(F, h, w, 3)`` or ``(h, w, 3)`` uint8 → resized (bilinear, antialiased when shrinking) to
    `cover_size`; returned unchanged when already that size."""
    h, w = frames.shape[-3:-1]
    nh, nw = cover_size(h, w, height, width)
    if (nh, nw) == (h, w):
        return frames
    flat = frames.reshape(-1, h, w, 3)  # (F, h, w, 3)
    out = np.stack([np.asarray(Image.fromarray(f).resize((nw, nh), Image.BILINEAR)) for f in flat])
    return out.reshape(*frames.shape[:-3], nh, nw, 3)


def crop_origin(h: int, w: int, height: int, width: int, rng: np.random.Generator | None) -> tuple[int, int]:
    """Top-left corner of a ``height × width`` window: random with `rng`, centred without."""
    if h < height or w < width:
        raise ValueError(f"crop: frame {h}×{w} is smaller than the crop {height}×{width}")
    if rng is None:
        return (h - height) // 2, (w - width) // 2
    return int(rng.integers(0, h - height + 1)), int(rng.integers(0, w - width + 1))


def crop(frames: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """The same window of every frame: ``(..., H, W, 3)`` → ``(..., height, width, 3)``."""
    return frames[..., top : top + height, left : left + width, :]


def hflip(frames: np.ndarray) -> np.ndarray:
    """Mirror left–right: ``(..., H, W, 3)``, W reversed."""
    return frames[..., ::-1, :]


def to_unit_range(frames: np.ndarray) -> np.ndarray:
    """uint8 ``[0, 255]`` → float32 ``[-1, 1]`` (x / 127.5 − 1)."""
    if frames.dtype != np.uint8:
        raise ValueError(f"to_unit_range: frames must be uint8, got {frames.dtype}")
    return frames.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def area_downsample(frames: np.ndarray, factor: int) -> np.ndarray:
    """``(..., H, W, C)`` float → ``(..., H/f, W/f, C)``: the mean of each f×f block (area filter)."""
    h, w, c = frames.shape[-3:]
    if factor < 1 or h % factor or w % factor:
        raise ValueError(f"area_downsample: {h}×{w} is not divisible by factor={factor}")
    blocks = frames.reshape(
        *frames.shape[:-3], h // factor, factor, w // factor, factor, c
    )  # (..., h, f, w, f, C)
    return blocks.mean(axis=(-4, -2), dtype=np.float32)


def decode_image(data: bytes) -> np.ndarray:
    """Encoded image bytes (JPEG/PNG/…) → ``(H, W, 3)`` uint8; `BadExample` if undecodable."""
    if not data:
        raise skipping.BadExample("empty", "zero-length image data")
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"), np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise skipping.BadExample("corrupt", f"image does not decode: {e}") from e


def encode_jpeg(frame: np.ndarray, quality: int = 95) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
