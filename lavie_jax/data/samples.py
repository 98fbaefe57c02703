"""One training example per stage, from decoded frames: what the trainer's batches hold.

An example (a batch stacks these along a new leading B axis) has

    video         (F, H, W, 3)   float32 in [-1, 1]  (uint8 [0, 255] with ``pixel_dtype='uint8'``)
    images        (M, H, W, 3)   the joint-training images; absent when M = 0
    captions      (1+M,)         object array of str: the clip's caption first, then each image's
    caption_ids   (1+M, 77)      int32, only when a ``tokenize(list[str]) -> (N, 77)`` is given
    low_res       (F, H/4, W/4, 3)  VSR only: the clip area-downsampled ×4 (same dtype as video)
    source, key   str            where the clip came from (logging, tests)

Stages differ only in the clip: ``base`` 16 frames; ``interpolation`` 4k+1 frames (61: the model's
16 keyframes are frames 0, 4, …, 60, the trainer picks them); ``vsr`` the high-resolution clip
with its ×4 low-resolution version. One crop window and one flip decision per clip (its frames
stay aligned); each image gets its own.
"""

from __future__ import annotations

import numpy as np

from lavie_jax.data import transforms

STAGES = ("base", "interpolation", "vsr")
DEFAULT_NUM_FRAMES = {"base": 16, "interpolation": 61, "vsr": 16}
KEYFRAME_STRIDE = 4  # interpolation: 16 keyframes every 4th frame → 61 frames
VSR_FACTOR = 4
PIXEL_DTYPES = ("float32", "uint8")


def check_stage(stage: str, num_frames: int, height: int, width: int, pixel_dtype: str = "float32") -> None:
    """`ValueError` for sizes the stage cannot use."""
    if stage not in STAGES:
        raise ValueError(f"stage={stage!r}; expected one of {STAGES}")
    if pixel_dtype not in PIXEL_DTYPES:
        raise ValueError(f"pixel_dtype={pixel_dtype!r}; expected one of {PIXEL_DTYPES}")
    if height < 1 or width < 1:
        raise ValueError(f"height×width={height}×{width}; expected positive sizes")
    if stage == "interpolation" and (num_frames - 1) % KEYFRAME_STRIDE:
        raise ValueError(
            f"interpolation: num_frames={num_frames}; expected 4k+1 frames (keyframes 0, 4, …), e.g. 61"
        )
    if stage == "vsr" and (height % VSR_FACTOR or width % VSR_FACTOR):
        raise ValueError(f"vsr: height×width={height}×{width}; expected multiples of {VSR_FACTOR}")


def _fit(
    frames: np.ndarray, height: int, width: int, rng: np.random.Generator, random_crop: bool, flip: bool
) -> np.ndarray:
    """Covering frames ``(..., h, w, 3)`` → ``(..., height, width, 3)`` uint8, cropped (and flipped)."""
    frames = transforms.resize_cover(frames, height, width)
    top, left = transforms.crop_origin(*frames.shape[-3:-1], height, width, rng if random_crop else None)
    frames = transforms.crop(frames, top, left, height, width)
    if flip and rng.random() < 0.5:
        frames = transforms.hflip(frames)
    return frames


def _pixels(frames: np.ndarray, pixel_dtype: str) -> np.ndarray:
    frames = np.ascontiguousarray(frames)
    return frames if pixel_dtype == "uint8" else transforms.to_unit_range(frames)


def make_example(
    clip: np.ndarray,
    stills: list[np.ndarray],
    captions: list[str],
    rng: np.random.Generator,
    *,
    stage: str,
    height: int,
    width: int,
    random_crop: bool = True,
    flip: bool = False,
    pixel_dtype: str = "float32",
    tokenize=None,
) -> dict:
    """The example dict (module docstring) from a uint8 clip ``(F, h, w, 3)`` and M stills
    ``(h_i, w_i, 3)`` that cover ``height × width``; `captions` = [clip caption, *image captions]."""
    if len(captions) != 1 + len(stills):
        raise ValueError(f"make_example: {len(captions)} captions for 1 clip + {len(stills)} images")
    video = _fit(clip, height, width, rng, random_crop, flip)  # (F, H, W, 3) uint8
    example = {"video": _pixels(video, pixel_dtype), "captions": np.array(captions, dtype=object)}
    if stills:
        images = np.stack([_fit(s, height, width, rng, random_crop, flip) for s in stills])  # (M, H, W, 3)
        example["images"] = _pixels(images, pixel_dtype)
    if stage == "vsr":
        low = transforms.area_downsample(transforms.to_unit_range(video), VSR_FACTOR)  # (F, H/4, W/4, 3)
        if pixel_dtype == "uint8":
            low = np.clip(np.round((low + 1.0) * 127.5), 0, 255).astype(np.uint8)
        example["low_res"] = low
    if tokenize is not None:
        ids = np.asarray(tokenize(list(captions)))
        if ids.ndim != 2 or ids.shape[0] != len(captions):
            raise ValueError(f"tokenize returned shape {ids.shape}; expected ({len(captions)}, L)")
        example["caption_ids"] = ids.astype(np.int32)
    return example
