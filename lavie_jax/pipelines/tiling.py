"""Processing a video in overlapping windows — frame chunks × spatial tiles — blended linearly.

    axes = (Axis(61, 8, 2), Axis(320, 128, 16), Axis(512, 128, 16))      # (F, H, W) in input cells
    out = map_blended(fn, axes, scales=(1, 4, 4))                          # fn(window) -> (B, f, 4h, 4w, C)

Every window of an axis has the same size (so ONE compiled program serves them all): windows start
every ``size − overlap`` cells and the last one is moved back to end at the border, so it may overlap
its neighbour more than asked. A window smaller than the axis is never needed: a size ≥ the length
gives one window covering it. In an overlap each window's weight ramps linearly — the earlier one
from 1 down, the later one up — and the output is the weighted sum divided by the summed weights, so
where two windows agree nothing changes and where they disagree the transition is spread over the
overlap instead of a seam. With no overlap the windows simply tile the axis (LaVie's chunks, §4.3).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable

import numpy as np
from tqdm.auto import tqdm


@dataclasses.dataclass(frozen=True)
class Axis:
    """`length` cells cut into windows of `size` (None: one window) overlapping by `overlap` cells."""

    length: int
    size: int | None = None
    overlap: int = 0
    name: str = "window"  # for error messages: the argument that set `size`

    def __post_init__(self):
        if self.size is not None and (not isinstance(self.size, (int, np.integer)) or self.size < 1):
            raise ValueError(f"{self.name}={self.size!r}: expected a positive integer or None")
        limit = self.length if self.size is None else self.size
        if not isinstance(self.overlap, (int, np.integer)) or not 0 <= self.overlap < limit:
            raise ValueError(
                f"{self.name} overlap={self.overlap!r}: expected an integer in 0..{limit - 1} "
                f"(less than the window of {limit})"
            )

    @property
    def window(self) -> int:
        """The size every window actually has: `size`, or the whole axis if that is shorter."""
        return self.length if self.size is None else min(self.size, self.length)

    @property
    def starts(self) -> list[int]:
        n = self.window
        if n == self.length:  # one window: the overlap does not matter
            return [0]
        return sorted(set(range(0, self.length - n, n - self.overlap)) | {self.length - n})

    def weights(self, scale: int = 1) -> list[np.ndarray]:
        """Each window's blending weights ``(window·scale,)`` on the axis scaled by `scale`: 1 inside,
        ramping linearly to 1/(o+1) across an overlap of o cells with the previous or next window."""
        starts = [s * scale for s in self.starts]
        n = self.window * scale
        out = []
        for k, s in enumerate(starts):
            o_prev = s - starts[k - 1] if k else n  # no neighbour: no ramp
            o_next = starts[k + 1] - s if k + 1 < len(starts) else n
            o_prev, o_next = n - o_prev, n - o_next  # overlaps in scaled cells
            i = np.arange(n, dtype=np.float64)
            out.append(np.minimum.reduce([np.ones(n), (i + 1) / (o_prev + 1), (n - i) / (o_next + 1)]))
        return out

    def slices(self, scale: int = 1) -> list[slice]:
        return [slice(s * scale, (s + self.window) * scale) for s in self.starts]


def map_blended(
    fn: Callable[[tuple[slice, ...]], np.ndarray],
    axes: tuple[Axis, Axis, Axis],
    scales: tuple[int, int, int] = (1, 1, 1),
    *,
    progress_bar: bool = False,
) -> np.ndarray:
    """Run `fn` on every window of the ``(F, H, W)`` grid and blend: ``fn((frames, rows, cols))`` gets
    the input slices and returns ``(B, f·sF, h·sH, w·sW, C)``; the result is ``(B, F·sF, H·sH, W·sW, C)``
    float32."""
    windows = list(
        itertools.product(*[zip(a.slices(), a.slices(s), a.weights(s)) for a, s in zip(axes, scales)])
    )
    out = total = None
    for (f_in, f_out, wf), (h_in, h_out, wh), (w_in, w_out, ww) in tqdm(
        windows, desc="windows", unit="window", disable=not progress_bar or len(windows) == 1
    ):
        y = np.asarray(fn((f_in, h_in, w_in)), np.float32)  # (B, f, h, w, C) in output cells
        if out is None:
            shape = [a.length * s for a, s in zip(axes, scales)]
            out = np.zeros((y.shape[0], *shape, y.shape[-1]), np.float32)
            total = np.zeros(shape, np.float32)
        weight = (wf[:, None, None] * wh[None, :, None] * ww[None, None, :]).astype(np.float32)  # (f, h, w)
        out[:, f_out, h_out, w_out] += y * weight[None, ..., None]
        total[f_out, h_out, w_out] += weight
    return out / total[None, ..., None]
