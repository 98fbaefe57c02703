"""A stage's sampling conventions, as stored in a model folder's ``scheduler/config.json``.

They decide the defaults of every pipeline argument and how the sampler is built: for the base
stage (spec §2.4) DDPM over 980, 960, …, 0 on the linear β schedule, CFG 7.5 with the unconditional
half first and an empty negative prompt, 16 frames at 320×512, 8 fps. Choosing another sampler than
the stage's own uses diffusers' SD default spacing ("leading", ``steps_offset``) for it.
"""

from __future__ import annotations

import dataclasses

from lavie_jax.diffusion import plan as plan_lib
from lavie_jax.diffusion import samplers, schedule


@dataclasses.dataclass(frozen=True)
class SamplingDefaults:
    schedule: dict = dataclasses.field(
        default_factory=lambda: schedule.ScheduleConfig(beta_start=1e-4, beta_end=0.02).to_dict()
    )
    sampler: str = "ddpm"
    spacing: str = "lavie_base"
    steps_offset: int = 1
    set_alpha_to_one: bool = False
    steps: int = 50
    guidance: float = 7.5
    cfg_order: str = "uncond_first"
    negative_prompt: str = ""
    num_frames: int = 16
    height: int = 320
    width: int = 512
    fps: float = 8.0

    def __post_init__(self):
        schedule.ScheduleConfig.from_dict(self.schedule)  # validates
        if self.sampler not in samplers.NAMES:
            raise ValueError(f"scheduler config: sampler={self.sampler!r}; expected one of {samplers.NAMES}")
        if self.cfg_order not in ("uncond_first", "cond_first"):
            raise ValueError(
                f"scheduler config: cfg_order={self.cfg_order!r}; expected 'uncond_first' or 'cond_first'"
            )

    @classmethod
    def from_dict(cls, d: dict) -> SamplingDefaults:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(
                f"scheduler config: unknown field(s) {unknown}; expected some of {sorted(names)}"
            )
        return cls(**d)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def schedule_config(self) -> schedule.ScheduleConfig:
        return schedule.ScheduleConfig.from_dict(self.schedule)

    def plan(self, sampler: str, steps: int) -> plan_lib.Plan:
        spacing = self.spacing if sampler == self.sampler else "leading"
        return samplers.make_plan(
            sampler,
            self.schedule_config(),
            steps,
            spacing=spacing,
            steps_offset=self.steps_offset,
            set_alpha_to_one=self.set_alpha_to_one,
        )

    def init_noise_sigma(self, sampler: str, plan: plan_lib.Plan) -> float:
        return samplers.init_noise_sigma(
            sampler, plan, self.spacing if sampler == self.sampler else "leading"
        )


def base_stage() -> SamplingDefaults:
    """LaVie's base stage, spec §2.4."""
    return SamplingDefaults()
