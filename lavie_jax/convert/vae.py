"""diffusers ``AutoencoderKL`` state dict → our NNX `AutoencoderKL`.

Accepts both attention namings (old ``query/key/value/proj_attn``, new ``to_q/to_k/to_v/to_out.0``)
and attention weights stored as 1×1 convs ``(C, C, 1, 1)``. Every key must map.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
from flax import nnx

from lavie_jax.convert import state, torch_layout
from lavie_jax.models import vae

OLD_ATTENTION_NAMES = {
    ".query.": ".to_q.",
    ".key.": ".to_k.",
    ".value.": ".to_v.",
    ".proj_attn.": ".to_out.0.",
}
_NORM = re.compile(r"(norm1|norm2|group_norm|conv_norm_out)\.weight$")
_LINEAR = re.compile(r"\.(to_q|to_k|to_v|to_out\.0)\.weight$")


def vae_flat_from_torch(state_dict: Mapping[str, object]) -> dict[str, np.ndarray]:
    flat = {}
    for key, value in state_dict.items():
        name = key
        for old, new in OLD_ATTENTION_NAMES.items():
            name = name.replace(old, new)
        if _NORM.search(name):
            flat[name.removesuffix("weight") + "scale"] = torch_layout.to_numpy(value)
        elif _LINEAR.search(name):
            flat[name.removesuffix("weight") + "kernel"] = torch_layout.linear_kernel(value)
        elif name.endswith(".weight"):
            flat[name.removesuffix("weight") + "kernel"] = torch_layout.conv_kernel(value)
        else:
            flat[name] = torch_layout.to_numpy(value)
    return flat


def load_vae_from_torch(state_dict: Mapping[str, object], config: vae.VAEConfig) -> vae.AutoencoderKL:
    model = nnx.eval_shape(lambda: vae.AutoencoderKL(config, rngs=nnx.Rngs(0)))
    state.assign(model, vae_flat_from_torch(state_dict), what="VAE")
    return model
