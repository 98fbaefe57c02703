"""Inference timestep lists, computed on the host (numpy), as diffusers and LaVie compute them.

Spacings (Lin et al. 2023, "Common diffusion noise schedules and sample steps are flawed", Table 2):
``leading`` (+ ``steps_offset``), ``trailing`` and ``linspace``; diffusers' DPM-Solver and Euler
schedulers space ``leading``/``linspace`` slightly differently from DDPM/DDIM (the `sampler` argument).
LaVie's exact lists (spec §5), the same for every sampler:
``lavie_base`` — diffusers 0.16's DDPM ignores ``steps_offset``: 980, 960, …, 0;
``lavie_interpolation`` — OpenAI ``space_timesteps(1000, "50")``: 999, 979, 958, …, 20, 0;
``lavie_vsr`` — DDIM with ``steps_offset=1``: 981, 961, …, 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SPACINGS = ("leading", "trailing", "linspace", "lavie_base", "lavie_interpolation", "lavie_vsr")
SAMPLERS = ("ddpm", "ddim", "dpm++2m", "euler")


def _check(steps: int, num_train_timesteps: int) -> None:
    if not isinstance(steps, (int, np.integer)) or not 1 <= steps <= num_train_timesteps:
        raise ValueError(f"steps={steps!r}; expected an integer in 1..{num_train_timesteps}")


def space_timesteps(num_timesteps: int, section_counts: str | Sequence[int]) -> list[int]:
    """OpenAI improved-diffusion's respacing (`respace.py`), ascending.

    The range is cut into ``len(section_counts)`` near-equal sections (the first ``N mod k`` one step
    longer); section i keeps `section_counts[i]` steps at a fractional stride ``(size−1)/(count−1)``,
    accumulated by repeated addition and rounded (Python's round-half-even), exactly as OpenAI does —
    ``round(j·stride)`` differs for some counts (e.g. 21 of 1000). A string is ``"50"``,
    ``"10,15,20"`` or ``"ddimN"`` (the DDIM paper's integer stride, one section).
    """
    if isinstance(section_counts, str):
        if section_counts.startswith("ddim"):
            want = int(section_counts[len("ddim") :])
            for stride in range(1, num_timesteps):
                if len(range(0, num_timesteps, stride)) == want:
                    return list(range(0, num_timesteps, stride))
            raise ValueError(
                f"section_counts={section_counts!r}: no integer stride gives exactly {want} of "
                f"{num_timesteps} steps"
            )
        section_counts = [int(c) for c in section_counts.split(",")]
    size_per, extra = divmod(num_timesteps, len(section_counts))
    taken, start = set(), 0
    for i, count in enumerate(section_counts):
        size = size_per + (1 if i < extra else 0)
        if not 1 <= count <= size:
            raise ValueError(f"section_counts={section_counts}: cannot take {count} steps from {size}")
        stride = 1 if count <= 1 else (size - 1) / (count - 1)
        position = 0.0
        for _ in range(count):
            taken.add(start + round(position))
            position += stride
        start += size
    return sorted(taken)


def make_timesteps(
    spacing: str,
    steps: int,
    num_train_timesteps: int = 1000,
    *,
    steps_offset: int = 0,
    sampler: str = "ddpm",
) -> np.ndarray:
    """Descending timesteps for `steps` denoising steps, as diffusers' `sampler` scheduler's
    ``set_timesteps`` makes them (int64; float32 for Euler, whose 'linspace' is not rounded)."""
    _check(steps, num_train_timesteps)
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler={sampler!r}; expected one of {SAMPLERS}")
    n = num_train_timesteps
    if spacing == "lavie_base":
        return make_timesteps("leading", steps, n, steps_offset=0)
    if spacing == "lavie_interpolation":
        return np.array(space_timesteps(n, [steps])[::-1], np.int64)
    if spacing == "lavie_vsr":
        return make_timesteps("leading", steps, n, steps_offset=1)
    out_dtype = np.float32 if sampler == "euler" else np.int64
    if spacing == "leading":
        # DPM-Solver spaces steps + 1 points and drops t = 0.
        points = steps + 1 if sampler == "dpm++2m" else steps
        ts = (np.arange(points) * (n // points)).round()[::-1][:steps]
        return ts.astype(out_dtype) + out_dtype(steps_offset)
    if spacing == "trailing":
        return (np.round(np.arange(n, 0, -n / steps)) - 1).astype(out_dtype)
    if spacing == "linspace":
        if sampler == "euler":  # not rounded: Euler interpolates σ between training timesteps
            return np.linspace(0, n - 1, steps, dtype=np.float32)[::-1].copy()
        if sampler == "dpm++2m":  # steps + 1 points over [0, N], the last (t = 0) dropped
            return np.linspace(0, n - 1, steps + 1).round()[::-1][:-1].astype(np.int64)
        return np.linspace(0, n - 1, steps).round()[::-1].astype(np.int64)
    raise ValueError(f"spacing={spacing!r}; expected one of {SPACINGS}")
