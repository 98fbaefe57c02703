"""A captioned synthetic video set: one coloured shape moving across a plain background.

Every clip shows one shape of one colour travelling in one direction at one speed, all stated in
its caption ("a red circle moving left, slowly"); every still image shows one shape
("a red circle"). The vocabulary below is the contract with anything that reads the set back
(e.g. an evaluator that checks a generated clip's colour and direction): colours with their RGB
values, shapes, directions as (row, column) unit steps, speeds as the fraction of the frame crossed
over a clip.

On disk (the same folder format users bring, read by `sources.FolderSource`)::

    DIR/videos/000000.mp4 …   H.264 mp4 (yuv420p, moov atom first, a keyframe every 8 frames by default)
    DIR/videos.csv            WebVid-style columns: path,caption,shape,color,direction,speed
    DIR/images/000000.png …
    DIR/images.jsonl          LAION-style lines: {"path", "caption", "shape", "color"}

Deterministic from the seed: item i is drawn from ``default_rng([seed, kind, i])``, so the first
items do not depend on how many are made.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import pathlib

import av
import numpy as np
from PIL import Image, ImageDraw

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 230),
    "yellow": (240, 220, 40),
    "purple": (160, 60, 210),
}
SHAPES = ("circle", "square", "triangle")
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}
SPEEDS: dict[str, float] = {"slowly": 0.25, "quickly": 0.5}  # fraction of the frame crossed per clip
BACKGROUND = (40, 40, 40)
SHAPE_SIZE = 0.35  # the shape's extent as a fraction of min(H, W)
VIDEO_COLUMNS = ("path", "caption", "shape", "color", "direction", "speed")
_VIDEO, _IMAGE = 0, 1  # the `kind` entry of the per-item seed


@dataclasses.dataclass(frozen=True)
class ShapeSpec:
    """What a clip (or an image, with direction/speed None) shows."""

    shape: str
    color: str
    direction: str | None = None
    speed: str | None = None

    def caption(self) -> str:
        if self.direction is None:
            return f"a {self.color} {self.shape}"
        return f"a {self.color} {self.shape} moving {self.direction}, {self.speed}"


def random_spec(rng: np.random.Generator, *, moving: bool) -> ShapeSpec:
    shape = SHAPES[rng.integers(len(SHAPES))]
    color = list(COLORS)[rng.integers(len(COLORS))]
    if not moving:
        return ShapeSpec(shape, color)
    return ShapeSpec(
        shape, color, list(DIRECTIONS)[rng.integers(len(DIRECTIONS))], list(SPEEDS)[rng.integers(2)]
    )


def draw(spec: ShapeSpec, center: tuple[float, float], height: int, width: int) -> np.ndarray:
    """One ``(H, W, 3)`` uint8 frame: the shape centred at ``(row, col)`` (sub-pixel, anti-aliased by
    drawing at a larger scale and box-filtering down)."""
    scale = max(1, min(4, 256 // max(height, width)))
    size = SHAPE_SIZE * min(height, width) * scale
    cy, cx = center[0] * scale, center[1] * scale
    canvas = Image.new("RGB", (width * scale, height * scale), BACKGROUND)
    pen = ImageDraw.Draw(canvas)
    half = size / 2
    box = (cx - half, cy - half, cx + half, cy + half)
    if spec.shape == "circle":
        pen.ellipse(box, fill=COLORS[spec.color])
    elif spec.shape == "square":
        pen.rectangle(box, fill=COLORS[spec.color])
    elif spec.shape == "triangle":  # apex up
        pen.polygon(
            [(cx, cy - half), (cx - half, cy + half), (cx + half, cy + half)], fill=COLORS[spec.color]
        )
    else:
        raise ValueError(f"draw: shape={spec.shape!r}; expected one of {SHAPES}")
    if scale > 1:
        canvas = canvas.resize((width, height), Image.BOX)
    return np.asarray(canvas, np.uint8)


def trajectory(
    spec: ShapeSpec, rng: np.random.Generator, num_frames: int, height: int, width: int
) -> np.ndarray:
    """``(F, 2)`` shape centres (row, col): a straight line covering ``SPEEDS[speed]`` of the frame
    along the direction, placed so the whole shape stays inside every frame."""
    half = SHAPE_SIZE * min(height, width) / 2
    dy, dx = DIRECTIONS[spec.direction]
    extent = np.array([height, width], np.float64)
    travel = SPEEDS[spec.speed] * extent * np.abs([dy, dx])  # (2,) pixels moved along each axis
    low = half + np.where(np.array([dy, dx]) < 0, travel, 0.0)  # start far enough from the edge moved to
    high = extent - half - np.where(np.array([dy, dx]) > 0, travel, 0.0)
    start = low + rng.random(2) * (high - low)
    t = np.linspace(0.0, 1.0, num_frames)[:, None]  # (F, 1)
    return start + t * np.array([dy, dx]) * travel  # (F, 2)


def render_clip(
    spec: ShapeSpec, rng: np.random.Generator, num_frames: int, height: int, width: int
) -> np.ndarray:
    """``(F, H, W, 3)`` uint8 frames of a moving shape."""
    centres = trajectory(spec, rng, num_frames, height, width)
    return np.stack([draw(spec, tuple(c), height, width) for c in centres])


def render_image(spec: ShapeSpec, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """``(H, W, 3)`` uint8: the shape at a random position, fully inside the frame."""
    half = SHAPE_SIZE * min(height, width) / 2
    centre = half + rng.random(2) * (np.array([height, width]) - 2 * half)
    return draw(spec, tuple(centre), height, width)


def write_mp4(path: str | os.PathLike, frames: np.ndarray, fps: float, *, keyframe_every: int = 8) -> None:
    """Lossless H.264 mp4 (4:2:0) with the index (moov) at the front, so a cut-off file still opens
    and fails only where its data ends — what a truncated download looks like to the reader."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"write_mp4: frames must be uint8 (F, H, W, 3), got {frames.dtype} {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"write_mp4: H×W={frames.shape[1]}×{frames.shape[2]}; yuv420p needs even sizes")
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=int(round(fps)))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        # Lossless (qp 0): the decoded frames are the rendered ones after the yuv420p conversion,
        # whatever the encoder decides. With rate control (crf 12, as before) x264 wrote different
        # bytes for the same frames in some processes — those that had loaded JAX, more often under
        # CPU contention, even with one thread — so two runs with one seed trained on different data.
        stream.options = {"qp": "0", "g": str(keyframe_every), "preset": "veryfast", "bf": "0"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def item_rng(seed: int, kind: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, kind, index])


def write_dataset(
    out: str | os.PathLike,
    *,
    videos: int,
    images: int,
    num_frames: int = 16,
    height: int = 64,
    width: int = 64,
    fps: float = 8.0,
    seed: int = 0,
    keyframe_every: int = 8,
) -> pathlib.Path:
    """Write `videos` clips and `images` stills (layout in the module docstring); returns `out`."""
    for name, value in (("videos", videos), ("images", images)):
        if value < 0:
            raise ValueError(f"write_dataset: {name}={value}; expected ≥ 0")
    if num_frames < 2 or height < 8 or width < 8:
        raise ValueError(
            f"write_dataset: num_frames={num_frames}, height={height}, width={width}; "
            "expected ≥ 2 frames of ≥ 8 px"
        )
    out = pathlib.Path(out)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(parents=True, exist_ok=True)
    with open(out / "videos.csv", "w", newline="", encoding="utf-8") as table:
        writer = csv.writer(table)
        writer.writerow(VIDEO_COLUMNS)
        for i in range(videos):
            rng = item_rng(seed, _VIDEO, i)
            spec = random_spec(rng, moving=True)
            rel = f"videos/{i:06d}.mp4"
            write_mp4(
                out / rel,
                render_clip(spec, rng, num_frames, height, width),
                fps,
                keyframe_every=keyframe_every,
            )
            writer.writerow([rel, spec.caption(), spec.shape, spec.color, spec.direction, spec.speed])
    with open(out / "images.jsonl", "w", encoding="utf-8") as table:
        for i in range(images):
            rng = item_rng(seed, _IMAGE, i)
            spec = random_spec(rng, moving=False)
            rel = f"images/{i:06d}.png"
            Image.fromarray(render_image(spec, rng, height, width)).save(out / rel)
            row = {"path": rel, "caption": spec.caption(), "shape": spec.shape, "color": spec.color}
            table.write(json.dumps(row) + "\n")
    return out
