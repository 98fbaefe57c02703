"""The LaVie cascade: prompts → base video → temporal interpolation → ×4 super-resolution.

    cascade = CascadePipeline(base="m/lavie_base", interpolation="m/lavie_interpolation", vsr="m/lavie_vsr")
    # or CascadePipeline.from_pretrained("m") for m/base, m/interpolation, m/vsr
    videos = cascade(["a teddy bear walking on the street"], seed=0)
    videos["base"], videos["interpolation"], videos["vsr"]
    # uint8 (B, 16, H, W, 3), (B, 61, H, W, 3), (B, 61, 4H, 4W, 3)

The cascade composes the three stage pipelines (`base`, `interpolation`, `vsr`): each stage is loaded
from its model folder, compiled, run on the previous stage's uint8 frames (as LaVie passes mp4s), and
released before the next stage is loaded, so only one stage's parameters are ever in memory.
`prepare` checks every stage's folder and arguments from the folders' configs alone — missing
folders, sizes that do not fit a later stage, a noise level out of range — before anything is loaded
or compiled. `run_stages` yields each stage's video with its load, compile and sampling times and its
peak RSS as soon as the stage is done.
"""

from __future__ import annotations

import dataclasses
import gc
import inspect
import os
import pathlib
import time
from collections.abc import Iterator, Sequence

import numpy as np

from lavie_jax.pipelines import arguments, loading, rss
from lavie_jax.pipelines import base as base_stage
from lavie_jax.pipelines import interpolation as interpolation_stage
from lavie_jax.pipelines import prompts as prompting
from lavie_jax.pipelines import vsr as vsr_stage

STAGES = ("base", "interpolation", "vsr")
ALIASES = {"interp": "interpolation"}
PIPELINES = {
    "base": base_stage.BasePipeline,
    "interpolation": interpolation_stage.InterpolationPipeline,
    "vsr": vsr_stage.VSRPipeline,
}


def parse_stages(stages: str | Sequence[str]) -> tuple[str, ...]:
    """``"base,interp,vsr"`` (or a sequence) → stage names in cascade order, starting with base."""
    names = [s.strip() for s in (stages.split(",") if isinstance(stages, str) else stages)]
    names = [ALIASES.get(n, n) for n in names]
    expected = "a comma-separated list in cascade order starting with base, e.g. base,interp,vsr or base,vsr"
    unknown = [n for n in names if n not in STAGES]
    if unknown:
        raise ValueError(f"stages={stages!r}: unknown stage(s) {unknown}; expected {expected}")
    if not names or names[0] != "base" or names != sorted(set(names), key=STAGES.index):
        raise ValueError(f"stages={stages!r}: expected {expected}")
    return tuple(names)


@dataclasses.dataclass(frozen=True)
class Request:
    """A checked cascade request: the stages to run, each one's `prepare` options and seed, and the
    video shape ``(B, F, H, W, 3)`` each stage will make."""

    prompts: list[str]
    stages: tuple[str, ...]
    options: dict[str, dict]
    seeds: dict[str, int]
    shapes: dict[str, tuple[int, ...]]


@dataclasses.dataclass(frozen=True)
class StageResult:
    stage: str
    video: np.ndarray  # uint8 (B, F, H, W, 3)
    fps: float
    load_s: float
    compile_s: float
    sample_s: float
    peak_rss_gb: float  # the largest RSS of the process while this stage ran


def _stage_options(stage: str, options: dict | None) -> dict:
    options = dict(options or {})
    allowed = {
        name
        for name, p in inspect.signature(PIPELINES[stage].prepare).parameters.items()
        if p.kind is p.KEYWORD_ONLY
    }
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"{stage} options: unknown {unknown}; expected some of {sorted(allowed)}")
    return options


def _check_sampling(configs: loading.Configs, options: dict) -> None:
    d = configs.defaults
    arguments.sampling(
        d.steps if options.get("steps") is None else options["steps"],
        d.guidance if options.get("guidance") is None else options["guidance"],
        d.sampler if options.get("sampler") is None else options["sampler"],
    )


class CascadePipeline:
    def __init__(
        self,
        base: str | os.PathLike | None = None,
        interpolation: str | os.PathLike | None = None,
        vsr: str | os.PathLike | None = None,
        *,
        attention_impl: str = "auto",
    ):
        """Model folders of the stages (only those to be run are needed); nothing is loaded yet."""
        self.folders = {"base": base, "interpolation": interpolation, "vsr": vsr}
        self.attention_impl = attention_impl

    @classmethod
    def from_pretrained(cls, root: str | os.PathLike, *, attention_impl: str = "auto") -> CascadePipeline:
        """A folder of stage folders: ``ROOT/base``, ``ROOT/interpolation``, ``ROOT/vsr`` (those present)."""
        root = pathlib.Path(root)
        if not root.is_dir():
            raise ValueError(f"cascade folder {str(root)!r} does not exist or is not a directory")
        return cls(**{s: root / s for s in STAGES if (root / s).is_dir()}, attention_impl=attention_impl)

    def prepare(
        self,
        prompts: list[str] | str,
        *,
        stages: str | Sequence[str] = STAGES,
        seed: int = 0,
        seeds: dict[str, int] | None = None,
        base: dict | None = None,
        interpolation: dict | None = None,
        vsr: dict | None = None,
    ) -> Request:
        """Check everything before loading: `stages` ("base,interp,vsr"), the stage folders, and each
        stage's options (the keyword arguments of its pipeline's `prepare`, e.g. ``base=dict(steps=25)``,
        ``vsr=dict(noise_level=50, chunk_overlap=2)``). `seeds` overrides `seed` per stage."""
        prompts = prompting.normalize(prompts)
        stages = parse_stages(stages)
        missing = [s for s in stages if self.folders[s] is None]
        if missing:
            raise ValueError(
                f"missing stage folder(s) for {missing}: pass a model folder for every stage in "
                f"stages={','.join(stages)}"
            )
        given = {"base": base, "interpolation": interpolation, "vsr": vsr}
        options = {s: _stage_options(s, given[s]) for s in stages}
        bad_seeds = sorted(set(seeds or {}) - set(STAGES))
        if bad_seeds:
            raise ValueError(f"seeds: unknown stage(s) {bad_seeds}; expected some of {STAGES}")
        shapes, b = {}, len(prompts)
        for s in stages:
            configs = loading.read_configs(self.folders[s], s)
            d, o = configs.defaults, options[s]
            _check_sampling(configs, o)
            if s == "base":
                size = [
                    getattr(d, k) if o.get(k) is None else o[k] for k in ("num_frames", "height", "width")
                ]
                base_stage.check_request(b, configs, *size)
                shapes[s] = (b, *size, 3)
            elif s == "interpolation":
                _, f, _, _, _ = interpolation_stage.check_video_shape(shapes["base"], b, configs)
                shapes[s] = (b, f, *shapes["base"][2:4], 3)
            else:
                previous = shapes[stages[stages.index(s) - 1]]
                vsr_stage.check_request(
                    previous,
                    b,
                    configs,
                    noise_level=d.noise_level if o.get("noise_level") is None else o["noise_level"],
                    chunk_frames=d.chunk_frames if o.get("chunk_frames") is None else o["chunk_frames"],
                    chunk_overlap=o.get("chunk_overlap", 0),
                    tile_size=o.get("tile_size"),
                    tile_overlap=o.get("tile_overlap", 0),
                )
                scale = configs.vae.downsample_factor
                shapes[s] = (*previous[:2], previous[2] * scale, previous[3] * scale, 3)
        return Request(prompts, stages, options, {s: (seeds or {}).get(s, seed) for s in stages}, shapes)

    def run_stages(self, request: Request, *, progress_bar: bool = False) -> Iterator[StageResult]:
        """Run the stages one after another, each loaded, compiled, run and released in turn."""
        video, fps = None, None
        for s in request.stages:
            with rss.PeakRSS() as peak:
                t0 = time.perf_counter()
                pipe = PIPELINES[s].from_pretrained(self.folders[s], attention_impl=self.attention_impl)
                load_s = time.perf_counter() - t0
                options = dict(request.options[s])
                if s == "vsr" and options.get("fps") is None:
                    options["fps"] = fps  # LaVie writes the super-resolved video at its input's rate
                inputs = (request.prompts,) if s == "base" else (request.prompts, video)
                stage_request = pipe.prepare(*inputs, **options)
                t0 = time.perf_counter()
                compiled = pipe.compile(stage_request, with_progress=progress_bar)
                compile_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                video = pipe.run(compiled, stage_request, seed=request.seeds[s], progress_bar=progress_bar)
                sample_s = time.perf_counter() - t0
                fps = stage_request.fps
                del pipe, compiled, stage_request  # release this stage's parameters and program
                gc.collect()
            yield StageResult(s, video, fps, load_s, compile_s, sample_s, peak.gb)

    def __call__(self, prompts, *, progress_bar: bool = False, **kwargs) -> dict[str, np.ndarray]:
        """`prepare` then `run_stages`: ``{stage: uint8 video (B, F, H, W, 3)}``."""
        request = self.prepare(prompts, **kwargs)
        return {r.stage: r.video for r in self.run_stages(request, progress_bar=progress_bar)}
