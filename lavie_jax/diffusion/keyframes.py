"""Which base frame conditions each frame of the temporal interpolation stage (spec §3.3).

The interpolation model turns N base frames into 4N − 3: base frame k lands on output frame 4k and
three new frames are made between each pair. Its "copied" conditioning is LaVie's
``repeat_interleave(4)[1:-2]`` of the base frames' latents, so output frame j sees base frame
⌊(j + 1)/4⌋ — for 16 → 61: ``[0,0,0, 1,1,1,1, 2, …, 14,14,14,14, 15,15]``.
"""

from __future__ import annotations

import numpy as np

STRIDE = 4  # output frames per base frame step


def num_output_frames(num_base_frames: int) -> int:
    """N base frames → 4N − 3 interpolated frames."""
    if not isinstance(num_base_frames, (int, np.integer)) or num_base_frames < 1:
        raise ValueError(f"num_base_frames={num_base_frames!r}; expected a positive integer")
    return STRIDE * (num_base_frames - 1) + 1


def copy_indices(num_base_frames: int) -> np.ndarray:
    """``(4N − 3,)`` int: the base frame each output frame is conditioned on, ⌊(j + 1)/4⌋."""
    return (np.arange(num_output_frames(num_base_frames)) + 1) // STRIDE
