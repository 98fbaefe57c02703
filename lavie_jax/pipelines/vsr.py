"""The ×4 video super-resolution pipeline: low-res video → 4× larger video, window by window.

    pipe = VSRPipeline.from_pretrained("converted/lavie_vsr")
    big = pipe(["a teddy bear walking"], video61, seed=0)        # uint8 (B, F, 4H, 4W, 3)

Spec §4.3. The low-res video (``[-1, 1]`` or uint8) is noise-augmented once, as a whole, to
`noise_level` of the scaled-linear low-res schedule (the level is also the UNet's class label); the
initial latents are drawn once for the whole video at the low-res size (the ×4 VAE makes latents as
large as the low-res frames). Then the video is cut into frame chunks (default 8; optionally
overlapping) × spatial tiles (default none; optionally overlapping) and ONE compiled program —
CLIP → DDIM v-prediction loop with CFG 5 (unconditional half first, negative prompt
"blur, worst quality") with the UNet seeing ``cat([x_t, low_res])`` → ×4 VAE decode in frame groups —
runs on every window; overlaps are blended linearly (`tiling`). LaVie runs its chunks with no overlap
and a shorter last chunk; here the last chunk is moved back to end at the clip's end (same shape,
same program), overlapping its neighbour, and blended.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lavie_jax.diffusion import schedule
from lavie_jax.pipelines import arguments, frames, loading, progress, stage, tiling


@dataclasses.dataclass(frozen=True)
class Request:
    """A validated VSR request; `shape_key` decides whether a compiled program can be reused."""

    prompt_ids: np.ndarray  # (B, L) int32
    negative_ids: np.ndarray  # (B, L) int32
    video: np.ndarray  # (B, F, H, W, 3) float32 in [-1, 1]: the low-res video, not yet noised
    steps: int
    guidance: float
    sampler: str
    fps: float
    noise_level: int
    axes: tuple[tiling.Axis, tiling.Axis, tiling.Axis]  # (F, H, W) windows in low-res pixels
    latent_channels: int

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """The whole video's latents ``(B, F, H, W, C)`` (latents are as large as the low-res frames)."""
        return (*self.video.shape[:-1], self.latent_channels)

    @property
    def window_shape(self) -> tuple[int, ...]:
        """One window's latents ``(B, f, h, w, C)``: the shape the compiled program takes."""
        return (self.video.shape[0], *(a.window for a in self.axes), self.latent_channels)

    @property
    def num_windows(self) -> int:
        return int(np.prod([len(a.starts) for a in self.axes]))

    @property
    def shape_key(self) -> tuple:
        return (self.window_shape, self.prompt_ids.shape, self.steps, self.sampler)


def _pair(value, name: str) -> tuple[int | None, int | None]:
    if value is None or isinstance(value, (int, np.integer)):
        return value, value
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return tuple(value)
    raise ValueError(f"{name}={value!r}: expected an int, a (height, width) pair or None")


def check_request(
    shape: tuple[int, ...],
    num_prompts: int,
    configs: loading.Configs,
    *,
    noise_level: int,
    chunk_frames: int | None,
    chunk_overlap: int = 0,
    tile_size: int | tuple[int, int] | None = None,
    tile_overlap: int = 0,
) -> tuple[tiling.Axis, tiling.Axis, tiling.Axis]:
    """Check a low-res video shape ``(B, F, H, W, 3)`` and the VSR options; returns the ``(F, H, W)``
    window axes. Usable from configs alone (a cascade checks before loading anything).
    `chunk_frames` None or 0: the whole clip in one chunk; `tile_size` None: whole frames."""
    u = configs.unet
    if len(shape) != 5 or shape[-1] != 3:
        raise ValueError(f"video of shape {tuple(shape)}: expected (B, F, H, W, 3)")
    b, f, h, w, _ = shape
    if b != num_prompts:
        raise ValueError(f"video batch B={b}: expected one video per prompt ({num_prompts})")
    if u.low_res_channels != 3 or u.num_class_embeds is None:
        raise ValueError(
            f"VSR UNet low_res_channels={u.low_res_channels}, num_class_embeds={u.num_class_embeds}: "
            "expected 3 (an RGB low-res video) and a noise-level embedding"
        )
    max_level = configs.defaults.max_noise_level
    if u.max_noise_level is not None:
        max_level = min(max_level, u.max_noise_level)
    if isinstance(noise_level, bool) or not isinstance(noise_level, (int, np.integer)):
        raise ValueError(f"noise_level={noise_level!r}: expected an integer in 0..{max_level}")
    if not 0 <= noise_level <= max_level:
        raise ValueError(f"noise_level={noise_level}: expected an integer in 0..{max_level}")
    factor = u.downsample_factor  # latents are as large as the low-res frames
    arguments.frame_size(h, w, 1, factor, what="video height×width")
    tile_h, tile_w = _pair(tile_size, "tile_size")
    axes = (
        tiling.Axis(f, chunk_frames or None, chunk_overlap, "chunk_frames"),
        tiling.Axis(h, tile_h, tile_overlap, "tile_size (height)"),
        tiling.Axis(w, tile_w, tile_overlap, "tile_size (width)"),
    )
    for axis in axes[1:]:
        if axis.window % factor:
            raise ValueError(
                f"{axis.name}={axis.size}: tiles must be multiples of {factor} (the UNet's downsampling)"
            )
    return axes


class VSRPipeline(stage.Stage):
    stage_name = "vsr"

    def __init__(self, *components, vae_frame_batch: int = 4):
        super().__init__(*components, vae_frame_batch=vae_frame_batch)  # LaVie decodes 4 frames at a time

    def prepare(
        self,
        prompts: list[str] | str,
        video,
        *,
        steps: int | None = None,
        guidance: float | None = None,
        sampler: str | None = None,
        negative_prompt: str | None = None,
        noise_level: int | None = None,
        chunk_frames: int | None = None,
        chunk_overlap: int = 0,
        tile_size: int | tuple[int, int] | None = None,
        tile_overlap: int = 0,
        fps: float | None = None,
    ) -> Request:
        """Check the prompts, the low-res video ``(B, F, H, W, 3)`` (uint8, or float in [-1, 1]) and
        the options, and resolve defaults from the model's scheduler config."""
        d = self.defaults
        prompts, shared = self.shared_request(
            prompts,
            steps=steps,
            guidance=guidance,
            sampler=sampler,
            negative_prompt=negative_prompt,
            fps=fps,
        )
        noise_level = d.noise_level if noise_level is None else noise_level
        axes = check_request(
            np.shape(video),
            len(prompts),
            self.configs,
            noise_level=noise_level,
            chunk_frames=d.chunk_frames if chunk_frames is None else chunk_frames,
            chunk_overlap=chunk_overlap,
            tile_size=tile_size,
            tile_overlap=tile_overlap,
        )
        return Request(
            video=frames.to_model_range(video),
            noise_level=int(noise_level),
            axes=axes,
            latent_channels=self.unet.config.in_channels - self.unet.config.low_res_channels,
            **shared,
        )

    def _program(self, request: Request, with_progress: bool):
        denoise_and_decode = self.denoise_and_decode(
            request.sampler, request.steps, with_progress=with_progress
        )

        def generate(models, prompt_ids, negative_ids, low_res, latents, key, noise_level, guidance_scale):
            unet, vae_model, text_encoder = nnx.merge(*models)
            low_res = jnp.concatenate([low_res, low_res])  # (2B, f, h, w, 3): both CFG halves
            labels = jnp.full((low_res.shape[0],), noise_level, jnp.int32)  # (2B,)

            def model(x, t, context):
                return unet(x, t, context, low_res=low_res, class_labels=labels)

            return denoise_and_decode(  # (B, f, 4h, 4w, 3)
                model, vae_model, text_encoder, prompt_ids, negative_ids, latents, key, guidance_scale
            )

        return jax.jit(generate)

    def compile(self, request: Request, *, with_progress: bool = False):
        """Lower and compile the one-window program ahead of time (cached per window shape)."""
        ids = jax.ShapeDtypeStruct(request.prompt_ids.shape, jnp.int32)
        window = request.window_shape
        return self.compile_cached(
            (request.shape_key, with_progress),
            lambda: self._program(request, with_progress),
            ids,
            ids,
            jax.ShapeDtypeStruct((*window[:-1], 3), jnp.float32),
            jax.ShapeDtypeStruct(window, jnp.float32),
            stage.abstract_key(),
            jax.ShapeDtypeStruct((), jnp.int32),
            1.0,
        )

    def noise_low_res(self, request: Request, key: jax.Array) -> jax.Array:
        """The low-res video noised to the request's level of the low-res schedule: ``√ᾱ x + √(1−ᾱ) ε``."""
        low_schedule = schedule.make_schedule(self.defaults.low_res_schedule_config())
        noise = jax.random.normal(key, request.video.shape, jnp.float32)
        levels = jnp.full((request.video.shape[0],), request.noise_level)
        return schedule.add_noise(low_schedule, jnp.asarray(request.video), noise, levels)

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
        """Sample every window with `compiled` and blend; `latents` ``(B, F, H, W, C)`` replace the
        initial noise of the whole video."""
        frames.check_output(output)
        low_key, noise_key, sampler_key = jax.random.split(jax.random.key(seed), 3)
        low_res = np.asarray(self.noise_low_res(request, low_key))  # (B, F, H, W, 3)
        latents = self.initial_latents(request.latent_shape, noise_key, latents, "(B, F, H, W, C)")
        latents = np.asarray(latents, np.float32)
        models = self.models()
        level = jnp.int32(request.noise_level)

        def window(slices):
            with progress.bar(request.steps, enabled=progress_bar, desc="vsr"):
                return compiled(
                    models,
                    request.prompt_ids,
                    request.negative_ids,
                    low_res[(slice(None), *slices)],
                    latents[(slice(None), *slices)],
                    sampler_key,
                    level,
                    request.guidance,
                )

        scale = self.vae.config.downsample_factor
        video = tiling.map_blended(window, request.axes, (1, scale, scale), progress_bar=progress_bar)
        return frames.finish(video, output)
