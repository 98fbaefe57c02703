"""The base text-to-video pipeline: prompts → 16-frame video, one compiled program.

    pipe = BasePipeline.from_pretrained("converted/lavie_base")
    frames = pipe(["a teddy bear walking on the street"], seed=0)      # uint8 (B, F, H, W, 3)

Tokenize → CLIP → denoising loop with classifier-free guidance (cond and uncond in one batch, in
the stage's order, spec §2.4) → VAE decode in frame batches → frames. Everything after tokenization
runs inside ONE ``jax.jit``: the loop is a ``lax.fori_loop`` over sampler steps (`denoise`). `prepare`
validates every argument before anything is compiled; `compile` lowers and compiles ahead of time
(so compile time is measured on its own); `run` samples.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lavie_jax.pipelines import arguments, frames, loading, progress, stage


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


def check_request(
    num_prompts: int, configs: loading.Configs, num_frames: int, height: int, width: int
) -> tuple[int, ...]:
    """Check the video size for this stage; returns the latents' shape ``(B, F, h, w, C)``. Usable from
    configs alone (a cascade checks before loading anything)."""
    num_frames = arguments.positive_int("num_frames", num_frames)
    height = arguments.positive_int("height", height)
    width = arguments.positive_int("width", width)
    f = configs.vae.downsample_factor
    arguments.frame_size(height, width, f, configs.unet.downsample_factor)
    return (num_prompts, num_frames, height // f, width // f, configs.unet.in_channels)


class BasePipeline(stage.Stage):
    stage_name = "base"

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
        prompts, shared = self.shared_request(
            prompts,
            steps=steps,
            guidance=guidance,
            sampler=sampler,
            negative_prompt=negative_prompt,
            fps=fps,
        )
        num_frames = d.num_frames if num_frames is None else num_frames
        height, width = d.height if height is None else height, d.width if width is None else width
        latent_shape = check_request(len(prompts), self.configs, num_frames, height, width)
        return Request(num_frames=num_frames, height=height, width=width, latent_shape=latent_shape, **shared)

    # ------------------------------------------------------------------ the compiled program
    def _program(self, request: Request, with_progress: bool):
        denoise_and_decode = self.denoise_and_decode(
            request.sampler, request.steps, with_progress=with_progress
        )

        def generate(models, prompt_ids, negative_ids, latents, key, guidance_scale):
            unet, vae_model, text_encoder = nnx.merge(*models)
            return denoise_and_decode(
                unet, vae_model, text_encoder, prompt_ids, negative_ids, latents, key, guidance_scale
            )

        return jax.jit(generate)

    def compile(self, request: Request, *, with_progress: bool = False):
        """Lower and compile ahead of time for this request's shapes (cached per shape)."""
        latents = jax.ShapeDtypeStruct(request.latent_shape, jnp.float32)
        ids = jax.ShapeDtypeStruct(request.prompt_ids.shape, jnp.int32)
        return self.compile_cached(
            (request.shape_key, with_progress),
            lambda: self._program(request, with_progress),
            ids,
            ids,
            latents,
            stage.abstract_key(),
            1.0,
        )

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
        frames.check_output(output)
        noise_key, sampler_key = jax.random.split(jax.random.key(seed))
        latents = self.initial_latents(request.latent_shape, noise_key, latents)
        with progress.bar(request.steps, enabled=progress_bar, desc="base"):
            video = compiled(
                self.models(),
                request.prompt_ids,
                request.negative_ids,
                latents,
                sampler_key,
                request.guidance,
            )
        return frames.finish(video, output)
