"""What every stage pipeline holds: its modules, its sampling defaults and its compiled programs.

A stage pipeline (base, interpolation, vsr) subclasses `Stage` and adds `prepare` (check arguments),
`_program` (the jitted function) and `run`; `compile_cached` lowers and compiles a program once per
request shape, ahead of time, so compile time is measured on its own and reused across calls. What
the stages share lives here: the prompt and sampler arguments (`shared_request`), the guided
denoising loop and decode inside a program (`denoise_and_decode`), the initial noise (`initial_latents`)
and ``pipe(prompts, …)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lavie_jax import compiler_options, heap
from lavie_jax.models import clip_text, tokenizer, unet3d, vae
from lavie_jax.pipelines import arguments, denoise, frames, loading, stage_defaults
from lavie_jax.pipelines import prompts as prompting


class Stage:
    stage_name: str  # the model folder's stage name

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

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, *, attention_impl: str = "auto", **kwargs):
        """Load a model folder of this stage (`loading.load`); `kwargs` go to the constructor."""
        return cls(*loading.load(folder, cls.stage_name, attention_impl=attention_impl), **kwargs)

    @property
    def configs(self) -> loading.Configs:
        return loading.Configs(self.unet.config, self.vae.config, self.defaults)

    @property
    def spatial_factor(self) -> int:
        """Pixels per latent cell × the UNet's own downsampling: frame sizes must be multiples of this."""
        return self.configs.spatial_factor

    def models(self):
        """The modules as (graph, state) for a jitted program's first argument."""
        return nnx.split((self.unet, self.vae, self.text_encoder))

    def compile_cached(self, key: tuple, build: Callable[[], Callable], *abstract_args):
        """``jax.jit(build())`` lowered for ``(models, *abstract_args)`` and compiled, once per `key`."""
        if key not in self._compiled:
            lowered = build().lower(self.models(), *abstract_args)
            self._compiled[key] = lowered.compile(compiler_options=compiler_options.sampling())
            heap.release_free_memory()  # the compiler's freed temporaries, before the program runs
        return self._compiled[key]

    def shared_request(
        self, prompts, *, steps=None, guidance=None, sampler=None, negative_prompt=None, fps=None
    ) -> tuple[list[str], dict]:
        """The checked prompts, and the Request fields every stage has (``prompt_ids``,
        ``negative_ids``, ``steps``, ``guidance``, ``sampler``, ``fps``), None meaning the model's default."""
        d = self.defaults
        prompts = prompting.normalize(prompts)
        steps, guidance, sampler = arguments.sampling(
            d.steps if steps is None else steps,
            d.guidance if guidance is None else guidance,
            d.sampler if sampler is None else sampler,
        )
        prompt_ids, negative_ids = prompting.tokenize(
            self.tokenizer,
            prompts,
            d.negative_prompt if negative_prompt is None else negative_prompt,
            d.prompt_suffix,
        )
        fields = dict(
            prompt_ids=prompt_ids,
            negative_ids=negative_ids,
            steps=steps,
            guidance=guidance,
            sampler=sampler,
            fps=d.fps if fps is None else fps,
        )
        return prompts, fields

    def denoise_and_decode(self, sampler: str, steps: int, *, with_progress: bool) -> Callable:
        """For inside a program: ``f(model, vae, text_encoder, prompt_ids, negative_ids, latents, key,
        guidance_scale)`` → frames in [0, 1]. The classifier-free-guided loop of `sampler` over `steps`
        (the model's plan and CFG order) from ``latents (B, F, h, w, C)`` (unit noise), then the decode.
        `model(x, t, context)` sees both CFG halves at once."""
        d = self.defaults
        plan = d.plan(sampler, steps)
        init_sigma = d.init_noise_sigma(sampler, plan)
        uncond_first = d.cfg_order == "uncond_first"
        frame_batch = self.vae_frame_batch

        def run(model, vae_model, text_encoder, prompt_ids, negative_ids, latents, key, guidance_scale):
            context = denoise.text_context(text_encoder, prompt_ids, negative_ids, uncond_first)
            z = denoise.sample(
                model,
                sampler,
                plan,
                latents * init_sigma,
                key,
                context,
                guidance_scale,
                uncond_first,
                with_progress=with_progress,
            )  # (B, F, h, w, C)
            video = vae_model.decode_video(vae_model.unscale_latents(z), frame_batch=frame_batch)
            return jnp.clip(video / 2 + 0.5, 0.0, 1.0)  # (B, F, H, W, 3)

        return run

    @staticmethod
    def initial_latents(shape: tuple[int, ...], key: jax.Array, latents, layout: str = "(B, F, h, w, C)"):
        """`latents` checked against `shape`, or unit normal noise from `key`; float32."""
        if latents is None:
            return jax.random.normal(key, shape, jnp.float32)
        if tuple(np.shape(latents)) != tuple(shape):
            raise ValueError(f"latents shape {np.shape(latents)}: expected {tuple(shape)} {layout}")
        return jnp.asarray(latents, jnp.float32)

    def __call__(
        self, prompts, *inputs, seed: int = 0, latents=None, output="uint8", progress_bar=False, **kwargs
    ):
        """``prepare(prompts, *inputs, **kwargs)`` → `compile` → `run`: the stage's video, `output`
        "uint8" ``(B, F, H, W, 3)`` or "float" in [0, 1]."""
        frames.check_output(output)
        request = self.prepare(prompts, *inputs, **kwargs)
        compiled = self.compile(request, with_progress=progress_bar)
        return self.run(
            compiled, request, seed=seed, latents=latents, progress_bar=progress_bar, output=output
        )


def abstract_key():
    """The shape of a PRNG key, for lowering."""
    return jax.eval_shape(lambda: jax.random.key(0))
