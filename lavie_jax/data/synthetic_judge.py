"""An automatic judge for videos of the synthetic set's kind: which colour, which direction, how smooth.

Per frame, the object is the set of pixels far from the plain background (`synthetic.BACKGROUND`);
its mean colour is classified as the nearest of `synthetic.COLORS`, its centroid tracked over the
clip. The direction is the sign of the dominant axis of the least-squares line through the centroid
track; smoothness is the mean frame-to-frame centroid jump as a fraction of the frame size (lower is
smoother; a clip with 4× the frames of the same motion should show about ¼ of the jump).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lavie_jax.data import synthetic

OBJECT_DISTANCE = 60.0  # RGB distance from the background above which a pixel belongs to the object
MIN_OBJECT_FRACTION = 0.01  # a frame "detects" the object when at least this fraction of it is object
MIN_TRAVEL = 0.03  # a track shorter than this fraction of the frame has no direction ("static")


@dataclasses.dataclass(frozen=True)
class Verdict:
    color: str | None  # the nearest synthetic colour of the object pixels (None: nothing detected)
    direction: str  # 'left' | 'right' | 'up' | 'down' | 'static' | 'undetected'
    detected_fraction: float  # frames in which the object was found
    mean_jump: float  # mean centroid jump between consecutive detected frames / min(H, W)


def object_mask(frames: np.ndarray) -> np.ndarray:
    """``(F, H, W, 3)`` uint8 → ``(F, H, W)`` booleans: pixels far from the background colour."""
    distance = np.linalg.norm(frames.astype(np.float32) - np.array(synthetic.BACKGROUND, np.float32), axis=-1)
    return distance > OBJECT_DISTANCE


def nearest_color(rgb: np.ndarray) -> str:
    names = list(synthetic.COLORS)
    table = np.array([synthetic.COLORS[n] for n in names], np.float32)
    return names[int(np.argmin(np.linalg.norm(table - rgb, axis=-1)))]


def direction_of(track: np.ndarray, size: float) -> str:
    """``(N, 2)`` (row, col) centroids in frame order → the dominant direction of their fitted line."""
    if len(track) < 2:
        return "static"
    t = np.arange(len(track), dtype=np.float64)
    slope = np.polyfit(t, track, 1)[0]  # (2,) pixels per frame along (row, col)
    travel = slope * (len(track) - 1) / size
    axis = int(np.argmax(np.abs(travel)))
    if abs(travel[axis]) < MIN_TRAVEL:
        return "static"
    return {(0, True): "down", (0, False): "up", (1, True): "right", (1, False): "left"}[
        (axis, travel[axis] > 0)
    ]


def judge(frames: np.ndarray) -> Verdict:
    """Judge one clip ``(F, H, W, 3)`` uint8."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"judge: expected uint8 frames (F, H, W, 3), got {frames.dtype} {frames.shape}")
    masks = object_mask(frames)  # (F, H, W)
    h, w = frames.shape[1:3]
    found = masks.reshape(len(frames), -1).mean(axis=1) >= MIN_OBJECT_FRACTION  # (F,)
    if not found.any():
        return Verdict(None, "undetected", 0.0, float("nan"))
    rows, cols = np.mgrid[:h, :w]
    track = np.array(
        [[rows[m].mean(), cols[m].mean()] for m, ok in zip(masks, found) if ok]
    )  # (N, 2) centroids of the frames where the object is found
    color = nearest_color(frames[masks & found[:, None, None]].astype(np.float32).mean(axis=0))
    jumps = np.linalg.norm(np.diff(track, axis=0), axis=-1) / min(h, w)
    return Verdict(
        color=color,
        direction=direction_of(track, min(h, w)),
        detected_fraction=float(found.mean()),
        mean_jump=float(jumps.mean()) if len(jumps) else float("nan"),
    )


def expected_of(prompt: str) -> tuple[str, str]:
    """The colour and direction a synthetic-style prompt asks for ("a red circle moving left, …")."""
    words = prompt.lower().replace(",", " ").split()
    colors = [w for w in words if w in synthetic.COLORS]
    directions = [w for w in words if w in synthetic.DIRECTIONS]
    if not colors or not directions:
        raise ValueError(
            f"prompt {prompt!r} names no colour of {list(synthetic.COLORS)} or no direction of "
            f"{list(synthetic.DIRECTIONS)}"
        )
    return colors[0], directions[0]


def prompt_list(count: int, seed: int) -> list[str]:
    """`count` captions of the synthetic set's kind drawn with `seed` (use another seed than training)."""
    rng = np.random.default_rng([seed, 7])
    return [synthetic.random_spec(rng, moving=True).caption() for _ in range(count)]
