"""A stage's sampling conventions, as stored in a model folder's ``scheduler/config.json``.

They decide the defaults of every pipeline argument and how the sampler is built. Choosing another
sampler than the stage's own uses diffusers' SD default spacing ("leading", ``steps_offset``) for it.

    base           (spec §2.4) DDPM over 980, 960, …, 0 on the linear β schedule; CFG 7.5, the
                   unconditional half first, empty negative prompt; 16 frames at 320×512, 8 fps.
    interpolation  (spec §3.3–3.4) DDIM (η = 0) over OpenAI's respaced list 999, 979, …, 0 with
                   float64 ᾱ and ᾱ_prev = 1 at the last step; CFG 4 with the conditional half first
                   and the literal negative prompt "None"; the prompt gets ", 4k." appended;
                   16 → 61 frames, 24 fps.
    vsr            (spec §4.3) DDIM v-prediction over 981, 961, …, 1 on the linear β schedule
                   (ᾱ_prev = ᾱ_0 at the last step); CFG 5, unconditional first, negative prompt
                   "blur, worst quality"; the low-res input noised to level 50 of the scaled-linear
                   low-res schedule (levels 0..350); chunks of 8 frames; ×4 to 1280×2048.

``num_frames``/``height``/``width`` are the size of the video the stage makes in the released
cascade (the base stage's defaults; the other stages take their size from their input video).
"""

from __future__ import annotations

import dataclasses

from lavie_jax.diffusion import plan as plan_lib
from lavie_jax.diffusion import samplers, schedule


def _linear_schedule(**overrides) -> dict:
    return schedule.ScheduleConfig(beta_start=1e-4, beta_end=0.02, **overrides).to_dict()


@dataclasses.dataclass(frozen=True)
class SamplingDefaults:
    schedule: dict = dataclasses.field(default_factory=_linear_schedule)
    sampler: str = "ddpm"
    spacing: str = "lavie_base"
    steps_offset: int = 1
    set_alpha_to_one: bool = False
    steps: int = 50
    guidance: float = 7.5
    cfg_order: str = "uncond_first"
    negative_prompt: str = ""
    prompt_suffix: str = ""  # appended to every prompt (the interpolation stage's ", 4k.")
    num_frames: int = 16
    height: int = 320
    width: int = 512
    fps: float = 8.0
    # VSR only: noise augmentation of the low-res input, and the frame chunks it is sampled in.
    noise_level: int | None = None  # also the UNet's class label
    max_noise_level: int = 350
    low_res_schedule: dict | None = None
    chunk_frames: int | None = None

    def __post_init__(self):
        schedule.ScheduleConfig.from_dict(self.schedule)  # validates
        if self.sampler not in samplers.NAMES:
            raise ValueError(f"scheduler config: sampler={self.sampler!r}; expected one of {samplers.NAMES}")
        if self.cfg_order not in ("uncond_first", "cond_first"):
            raise ValueError(
                f"scheduler config: cfg_order={self.cfg_order!r}; expected 'uncond_first' or 'cond_first'"
            )
        if (self.noise_level is None) != (self.low_res_schedule is None):
            raise ValueError(
                "scheduler config: noise_level and low_res_schedule come together (a VSR stage has "
                f"both, other stages neither); got noise_level={self.noise_level!r}, "
                f"low_res_schedule={self.low_res_schedule!r}"
            )
        if self.low_res_schedule is not None:
            schedule.ScheduleConfig.from_dict(self.low_res_schedule)
            if not 0 <= self.noise_level <= self.max_noise_level:
                raise ValueError(
                    f"scheduler config: noise_level={self.noise_level}; expected 0..{self.max_noise_level}"
                )
        if self.chunk_frames is not None and self.chunk_frames < 1:
            raise ValueError(f"scheduler config: chunk_frames={self.chunk_frames}; expected ≥ 1 or null")

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

    def low_res_schedule_config(self) -> schedule.ScheduleConfig:
        if self.low_res_schedule is None:
            raise ValueError("scheduler config: this stage has no low_res_schedule (not a VSR stage)")
        return schedule.ScheduleConfig.from_dict(self.low_res_schedule)

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


def interpolation_stage() -> SamplingDefaults:
    """LaVie's temporal interpolation stage, spec §3.3–3.4 (16 → 61 frames)."""
    return SamplingDefaults(
        schedule=_linear_schedule(alphas_dtype="float64"),
        sampler="ddim",
        spacing="lavie_interpolation",
        steps_offset=0,
        set_alpha_to_one=True,
        guidance=4.0,
        cfg_order="cond_first",
        negative_prompt="None",
        prompt_suffix=", 4k.",
        num_frames=61,
        fps=24.0,
    )


def vsr_stage() -> SamplingDefaults:
    """LaVie's ×4 video super-resolution stage, spec §4.3 (on the 61 interpolated frames)."""
    return SamplingDefaults(
        schedule=_linear_schedule(prediction_type="v_prediction"),
        sampler="ddim",
        spacing="lavie_vsr",
        steps_offset=1,
        set_alpha_to_one=False,
        guidance=5.0,
        cfg_order="uncond_first",
        negative_prompt="blur, worst quality",
        num_frames=61,
        height=1280,
        width=2048,
        fps=24.0,
        noise_level=50,
        low_res_schedule=schedule.ScheduleConfig(
            beta_start=1e-4, beta_end=0.02, beta_schedule="scaled_linear"
        ).to_dict(),
        chunk_frames=8,
    )
