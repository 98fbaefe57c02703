"""The base text-to-video pipeline: prompts → 16-frame video, one compiled program.

    pipe = BasePipeline.from_pretrained("converted/lavie_base")
    frames = pipe(["a teddy bear walking on the street"], seed=0)      # uint8 (B, F, H, W, 3)

Tokenize → CLIP → denoising loop with classifier-free guidance (cond and uncond in one batch, in
the stage's order, spec §2.4) → VAE decode in frame batches → frames. Everything after tokenization
runs inside ONE ``jax.jit``: the loop is a ``lax.fori_loop`` over sampler steps. `prepare` validates
every argument before anything is compiled; `compile` lowers and compiles ahead of time (so compile
time is measured on its own); `run` samples.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lavie_jax.diffusion import samplers
from lavie_jax.models import attention, clip_text, tokenizer, unet3d, vae
from lavie_jax.pipelines import guidance, model_folder, progress, stage_defaults


@dataclasses.dataclass(frozen=True)
class Request:
    """A validated sampling request; `shape_key` decides whether a compiled program can be reused."""

    prompt_ids: np.ndarray  # (B, L) int32
    negative_ids: np.ndarray  # (B, L) int32
    num_frames: int
    height: int
    width: int
    steps: int
    guidance: float
    sampler: str
    fps: float
    latent_shape: tuple[int, ...]  # (B, F, h, w, C)

    @property
    def shape_key(self) -> tuple:
        return (self.latent_shape, self.prompt_ids.shape, self.steps, self.sampler)


class BasePipeline:
    def __init__(
        self,
        unet: unet3d.UNet3D,
        vae_model: vae.AutoencoderKL,
        text_encoder: clip_text.CLIPTextModel,
        tok: tokenizer.Tokenizer,
        scheduler_config: dict,
        *,
        vae_frame_batch: int = 8,
    ):
        self.unet, self.vae, self.text_encoder, self.tokenizer = unet, vae_model, text_encoder, tok
        self.defaults = stage_defaults.SamplingDefaults.from_dict(scheduler_config)
        self.vae_frame_batch = vae_frame_batch
        self._compiled: dict[tuple, object] = {}

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, *, attention_impl: str = "auto", **kwargs):
        folder = pathlib.Path(folder)
        model_folder.check_folder(folder, stage="base")
        unet = unet3d.load_unet(folder / "unet")
        vae_model = vae.load_vae(folder / "vae")
        text_encoder = clip_text.load_text_encoder(folder / "text_encoder")
        impl = default_attention_impl() if attention_impl == "auto" else attention_impl
        attention.set_impl(unet, impl)
        attention.set_impl(vae_model, impl)
        tok = tokenizer.Tokenizer.from_folder(folder / "tokenizer")
        return cls(unet, vae_model, text_encoder, tok, model_folder.read_scheduler_config(folder), **kwargs)

    # ------------------------------------------------------------------ validation
    @property
    def spatial_factor(self) -> int:
        """Pixels per latent cell × the UNet's own downsampling: sizes must be multiples of this."""
        return self.vae.config.downsample_factor * self.unet.config.downsample_factor

    def prepare(
        self,
        prompts: list[str] | str,
        *,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        sampler: str | None = None,
        negative_prompt: str | None = None,
        fps: float | None = None,
    ) -> Request:
        """Resolve defaults from the model's scheduler config and check every argument."""
        d = self.defaults
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValueError(f"prompts={prompts!r}: expected a non-empty list of strings")
        num_frames = d.num_frames if num_frames is None else num_frames
        height, width = d.height if height is None else height, d.width if width is None else width
        steps = d.steps if steps is None else steps
        guidance = d.guidance if guidance is None else guidance
        sampler = d.sampler if sampler is None else sampler
        negative_prompt = d.negative_prompt if negative_prompt is None else negative_prompt
        for name, value in (
            ("num_frames", num_frames),
            ("steps", steps),
            ("height", height),
            ("width", width),
        ):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}={value!r}: expected a positive integer")
        if guidance < 0:
            raise ValueError(f"guidance={guidance}: expected ≥ 0")
        if sampler not in samplers.NAMES:
            raise ValueError(f"sampler={sampler!r}: expected one of {samplers.NAMES}")
        factor = self.spatial_factor
        if height % factor or width % factor:
            raise ValueError(
                f"height×width={height}×{width}: both must be multiples of {factor} for this model "
                f"(VAE ×{self.vae.config.downsample_factor}, UNet ×{self.unet.config.downsample_factor})"
            )
        f = self.vae.config.downsample_factor
        latent_shape = (len(prompts), num_frames, height // f, width // f, self.unet.config.in_channels)
        return Request(
            prompt_ids=self.tokenizer(prompts),
            negative_ids=self.tokenizer([negative_prompt] * len(prompts)),
            num_frames=num_frames,
            height=height,
            width=width,
            steps=steps,
            guidance=float(guidance),
            sampler=sampler,
            fps=d.fps if fps is None else fps,
            latent_shape=latent_shape,
        )

    # ------------------------------------------------------------------ the compiled program
    def _program(self, request: Request, with_progress: bool):
        d = self.defaults
        name, steps = request.sampler, request.steps
        plan = d.plan(name, steps)
        init_sigma = d.init_noise_sigma(name, plan)
        scaling = self.vae.config.scaling_factor
        frame_batch = self.vae_frame_batch
        uncond_first = d.cfg_order == "uncond_first"

        def generate(models, prompt_ids, negative_ids, latents, key, guidance_scale):
            unet, vae_model, text_encoder = nnx.merge(*models)
            context = guidance.batch(
                text_encoder(negative_ids), text_encoder(prompt_ids), uncond_first
            )  # (2B, L, D)
            state = samplers.init(latents * init_sigma, key)

            def body(i, state):
                x = samplers.scale_model_input(name, plan, state)  # (B, F, h, w, C)
                t = jnp.full((2 * x.shape[0],), plan.timesteps[i])
                out = unet(jnp.concatenate([x, x]), t, context)  # (2B, F, h, w, C): both CFG halves at once
                if with_progress:
                    progress.report(i)
                return samplers.step(name, plan, state, guidance.combine(out, guidance_scale, uncond_first))

            state = jax.lax.fori_loop(0, steps, body, state)
            video = vae_model.decode_video(state.sample / scaling, frame_batch=frame_batch)  # (B, F, H, W, 3)
            return jnp.clip(video / 2 + 0.5, 0.0, 1.0)

        return jax.jit(generate)

    def compile(self, request: Request, *, with_progress: bool = False):
        """Lower and compile ahead of time for this request's shapes (cached per shape)."""
        key = (request.shape_key, with_progress)
        if key not in self._compiled:
            models = nnx.split((self.unet, self.vae, self.text_encoder))
            latents = jax.ShapeDtypeStruct(request.latent_shape, jnp.float32)
            ids = jax.ShapeDtypeStruct(request.prompt_ids.shape, jnp.int32)
            rng = jax.eval_shape(lambda: jax.random.key(0))
            program = self._program(request, with_progress)
            self._compiled[key] = program.lower(models, ids, ids, latents, rng, 1.0).compile()
        return self._compiled[key]

    def run(
        self,
        compiled,
        request: Request,
        *,
        seed: int = 0,
        latents: np.ndarray | None = None,
        progress_bar: bool = False,
        output: str = "uint8",
    ) -> np.ndarray:
        if output not in ("uint8", "float"):
            raise ValueError(f"output={output!r}: expected 'uint8' or 'float'")
        key = jax.random.key(seed)
        noise_key, sampler_key = jax.random.split(key)
        if latents is None:
            latents = jax.random.normal(noise_key, request.latent_shape, jnp.float32)
        elif tuple(np.shape(latents)) != request.latent_shape:
            raise ValueError(
                f"latents shape {np.shape(latents)}: expected {request.latent_shape} (B, F, h, w, C)"
            )
        models = nnx.split((self.unet, self.vae, self.text_encoder))
        with progress.bar(request.steps, enabled=progress_bar):
            video = compiled(
                models,
                request.prompt_ids,
                request.negative_ids,
                jnp.asarray(latents, jnp.float32),
                sampler_key,
                request.guidance,
            )
        video = np.asarray(video)
        if output == "float":
            return video
        return np.clip(np.floor(video * 255 + 0.5), 0, 255).astype(np.uint8)  # LaVie's rounding

    def __call__(
        self, prompts, *, seed: int = 0, latents=None, output: str = "uint8", progress_bar=False, **kwargs
    ):
        request = self.prepare(prompts, **kwargs)
        compiled = self.compile(request, with_progress=progress_bar)
        return self.run(
            compiled, request, seed=seed, latents=latents, progress_bar=progress_bar, output=output
        )


def default_attention_impl() -> str:
    """Memory-efficient chunked attention on CPU; XLA's fused attention elsewhere."""
    return "chunked" if jax.default_backend() == "cpu" else "xla"
