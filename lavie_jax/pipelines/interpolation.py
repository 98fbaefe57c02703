"""The temporal interpolation pipeline: N base frames → 4N − 3 frames (16 → 61), one compiled program.

    pipe = InterpolationPipeline.from_pretrained("converted/lavie_interpolation")
    video61 = pipe(["a teddy bear walking"], base_video, seed=0)    # uint8 (B, 4N−3, H, W, 3)

Inside ONE ``jax.jit`` (spec §3.3–3.4): VAE-encode the base frames (a posterior sample, scaled), copy
them onto the output frames (output frame j gets base frame ⌊(j+1)/4⌋, `keyframes.copy_indices`),
run the stage's sampler — DDIM over OpenAI's respaced list by default — with the UNet seeing
``cat([x_t, copied], channels)``, classifier-free guidance in the stage's order (conditional half
first, negative prompt "None", scale 4), then decode. The UNet is called once per step on the
doubled batch (LaVie's released sampler calls it twice for the same result).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lavie_jax.diffusion import keyframes
from lavie_jax.pipelines import arguments, frames, loading, progress, stage


@dataclasses.dataclass(frozen=True)
class Request:
    """A validated interpolation request; `shape_key` decides whether a compiled program can be reused."""

    prompt_ids: np.ndarray  # (B, L) int32
    negative_ids: np.ndarray  # (B, L) int32
    video: np.ndarray  # (B, N, H, W, 3) float32 in [-1, 1]: the base frames
    steps: int
    guidance: float
    sampler: str
    fps: float
    latent_shape: tuple[int, ...]  # (B, 4N−3, h, w, C): the generated latents

    @property
    def shape_key(self) -> tuple:
        return (self.video.shape, self.prompt_ids.shape, self.steps, self.sampler)


def check_video_shape(shape: tuple[int, ...], num_prompts: int, configs: loading.Configs) -> tuple[int, ...]:
    """Check a base video's shape ``(B, N, H, W, 3)`` for this stage; returns the generated latents'
    shape ``(B, 4N−3, h, w, C)``. Usable from configs alone (a cascade checks before loading)."""
    if len(shape) != 5 or shape[-1] != 3:
        raise ValueError(f"video of shape {tuple(shape)}: expected (B, N, H, W, 3)")
    b, n, h, w, _ = shape
    if b != num_prompts:
        raise ValueError(f"video batch B={b}: expected one video per prompt ({num_prompts})")
    if n < 2:
        raise ValueError(f"video frames N={n}: expected ≥ 2 base frames (N → 4N−3, 16 → 61)")
    f = configs.vae.downsample_factor
    arguments.frame_size(h, w, f, configs.unet.downsample_factor, what="video height×width")
    latent = configs.vae.latent_channels
    if configs.unet.in_channels != 2 * latent:
        raise ValueError(
            f"interpolation UNet in_channels={configs.unet.in_channels}: expected {2 * latent} "
            f"(x_t and the copied frames, {latent} latent channels each)"
        )
    return (b, keyframes.num_output_frames(n), h // f, w // f, configs.unet.out_channels)


class InterpolationPipeline(stage.Stage):
    stage_name = "interpolation"

    def prepare(
        self,
        prompts: list[str] | str,
        video,
        *,
        steps: int | None = None,
        guidance: float | None = None,
        sampler: str | None = None,
        negative_prompt: str | None = None,
        fps: float | None = None,
    ) -> Request:
        """Check the prompts and the base video ``(B, N, H, W, 3)`` (uint8, or float in [-1, 1]) and
        resolve defaults from the model's scheduler config."""
        prompts, shared = self.shared_request(
            prompts,
            steps=steps,
            guidance=guidance,
            sampler=sampler,
            negative_prompt=negative_prompt,
            fps=fps,
        )
        latent_shape = check_video_shape(np.shape(video), len(prompts), self.configs)
        return Request(video=frames.to_model_range(video), latent_shape=latent_shape, **shared)

    def _program(self, request: Request, with_progress: bool):
        copy = keyframes.copy_indices(request.video.shape[1])  # (4N−3,) base frame of each output frame
        frame_batch = self.vae_frame_batch
        denoise_and_decode = self.denoise_and_decode(
            request.sampler, request.steps, with_progress=with_progress
        )

        def generate(models, prompt_ids, negative_ids, video, latents, key, guidance_scale):
            unet, vae_model, text_encoder = nnx.merge(*models)
            encode_key, sampler_key = jax.random.split(key)
            posterior = vae_model.encode_video(video, frame_batch=frame_batch)
            base = vae_model.scale_latents(posterior.sample(encode_key))  # (B, N, h, w, c)
            copied = base[:, copy]  # (B, 4N−3, h, w, c)
            copied = jnp.concatenate([copied, copied])  # (2B, 4N−3, h, w, c): both CFG halves

            def model(x, t, context):
                return unet(jnp.concatenate([x, copied], axis=-1), t, context)  # x: (2B, F, h, w, c)

            return denoise_and_decode(  # (B, 4N−3, H, W, 3)
                model, vae_model, text_encoder, prompt_ids, negative_ids, latents, sampler_key, guidance_scale
            )

        return jax.jit(generate)

    def compile(self, request: Request, *, with_progress: bool = False):
        """Lower and compile ahead of time for this request's shapes (cached per shape)."""
        ids = jax.ShapeDtypeStruct(request.prompt_ids.shape, jnp.int32)
        return self.compile_cached(
            (request.shape_key, with_progress),
            lambda: self._program(request, with_progress),
            ids,
            ids,
            jax.ShapeDtypeStruct(request.video.shape, jnp.float32),
            jax.ShapeDtypeStruct(request.latent_shape, jnp.float32),
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
        noise_key, key = jax.random.split(jax.random.key(seed))
        latents = self.initial_latents(request.latent_shape, noise_key, latents)
        with progress.bar(request.steps, enabled=progress_bar, desc="interpolation"):
            video = compiled(
                self.models(),
                request.prompt_ids,
                request.negative_ids,
                request.video,
                latents,
                key,
                request.guidance,
            )
        return frames.finish(video, output)
