"""What every stage pipeline holds: its modules, its sampling defaults and its compiled programs.

A stage pipeline (base, interpolation, vsr) subclasses `Stage` and adds `prepare` (check arguments),
`_program` (the jitted function) and `run`; `compile_cached` lowers and compiles a program once per
request shape, ahead of time, so compile time is measured on its own and reused across calls.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import jax
from flax import nnx

from lavie_jax.models import clip_text, tokenizer, unet3d, vae
from lavie_jax.pipelines import loading, stage_defaults


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
            self._compiled[key] = build().lower(self.models(), *abstract_args).compile()
        return self._compiled[key]


def abstract_key():
    """The shape of a PRNG key, for lowering."""
    return jax.eval_shape(lambda: jax.random.key(0))
