"""Inference timestep lists, computed on the host (numpy), as diffusers and LaVie compute them.

Spacings (Lin et al. 2023, "Common diffusion noise schedules and sample steps are flawed", Table 2):
``leading`` (+ ``steps_offset``), ``trailing`` and ``linspace``. LaVie's exact lists (spec §5):
``lavie_base`` — diffusers 0.16's DDPM ignores ``steps_offset``: 980, 960, …, 0;
``lavie_interpolation`` — OpenAI ``space_timesteps(1000, "50")``: 999, 979, 958, …, 20, 0;
``lavie_vsr`` — DDIM with ``steps_offset=1``: 981, 961, …, 1.
"""

from __future__ import annotations

import numpy as np

SPACINGS = ("leading", "trailing", "linspace", "lavie_base", "lavie_interpolation", "lavie_vsr")


def _check(steps: int, num_train_timesteps: int) -> None:
    if not isinstance(steps, (int, np.integer)) or not 1 <= steps <= num_train_timesteps:
        raise ValueError(f"steps={steps!r}; expected an integer in 1..{num_train_timesteps}")


def space_timesteps(num_timesteps: int, section_counts: list[int]) -> list[int]:
    """OpenAI improved-diffusion's respacing: `section_counts[i]` evenly strided steps per section."""
    size_per, extra = divmod(num_timesteps, len(section_counts))
    taken, start = [], 0
    for i, count in enumerate(section_counts):
        size = size_per + (1 if i < extra else 0)
        if size < count:
            raise ValueError(f"section_counts={section_counts}: cannot take {count} steps from {size}")
        stride = 1 if count <= 1 else (size - 1) / (count - 1)
        taken += [start + round(stride * j) for j in range(count)]
        start += size
    return sorted(set(taken))


def make_timesteps(
    spacing: str, steps: int, num_train_timesteps: int = 1000, *, steps_offset: int = 0
) -> np.ndarray:
    """Descending int64 timesteps for `steps` denoising steps."""
    _check(steps, num_train_timesteps)
    n = num_train_timesteps
    if spacing == "leading":
        return (np.arange(steps) * (n // steps)).round()[::-1].astype(np.int64) + steps_offset
    if spacing == "trailing":
        return (np.round(np.arange(n, 0, -n / steps)) - 1).astype(np.int64)
    if spacing == "linspace":
        return np.linspace(0, n - 1, steps).round()[::-1].astype(np.int64)
    if spacing == "lavie_base":
        return make_timesteps("leading", steps, n, steps_offset=0)
    if spacing == "lavie_interpolation":
        return np.array(space_timesteps(n, [steps])[::-1], np.int64)
    if spacing == "lavie_vsr":
        return make_timesteps("leading", steps, n, steps_offset=1)
    raise ValueError(f"spacing={spacing!r}; expected one of {SPACINGS}")
