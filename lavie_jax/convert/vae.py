"""diffusers ``AutoencoderKL`` state dict → our NNX `AutoencoderKL`.

Renaming and transposes only:

* attention names: old diffusers files (< 0.14) call the mid-block projections ``query/key/value/
  proj_attn``; they become ``to_q/to_k/to_v/to_out.0``. Their weights are Linear ``(out, in)`` →
  kernel ``(in, out)``, also when stored as 1×1 convs ``(C, C, 1, 1)`` (files converted from the
  original LDM checkpoints);
* convs ``(O, I, kh, kw)`` → kernel ``(kh, kw, I, O)``;
* GroupNorm ``weight`` → ``scale``; every ``bias`` keeps its name.

Every key of a diffusers AutoencoderKL is a parameter of ours, so nothing is skipped: `state.assign`
rejects any key that does not land on a parameter (and any parameter left unfilled), listing them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np
from flax import nnx

from lavie_jax.convert import state, torch_layout
from lavie_jax.models import vae

# ``…attentions.<i>.<old>.`` → ``…attentions.<i>.<new>.``
OLD_ATTENTION_NAMES = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
_OLD_ATTENTION = re.compile(r"(\.attentions\.\d+\.)(query|key|value|proj_attn)\.")
_NORM_WEIGHT = re.compile(r"\.(norm1|norm2|group_norm|conv_norm_out)\.weight$")
_LINEAR_WEIGHT = re.compile(r"\.attentions\.\d+\.(to_q|to_k|to_v|to_out\.0)\.weight$")


def new_attention_name(key: str) -> str:
    """``encoder.mid_block.attentions.0.query.weight`` → ``encoder.mid_block.attentions.0.to_q.weight``."""
    return _OLD_ATTENTION.sub(lambda m: m.group(1) + OLD_ATTENTION_NAMES[m.group(2)] + ".", key)


def vae_flat_from_torch(state_dict: Mapping[str, object]) -> dict[str, np.ndarray]:
    """A diffusers AutoencoderKL state dict (torch tensors or numpy arrays) → our flat parameters."""
    flat = {}
    for key, value in state_dict.items():
        name = new_attention_name(key)
        try:
            if _NORM_WEIGHT.search(name):
                flat[name.removesuffix("weight") + "scale"] = torch_layout.to_numpy(value)
            elif _LINEAR_WEIGHT.search(name):
                flat[name.removesuffix("weight") + "kernel"] = torch_layout.linear_kernel(value)
            elif name.endswith(".weight"):
                flat[name.removesuffix("weight") + "kernel"] = torch_layout.conv_kernel(value)
            else:
                flat[name] = torch_layout.to_numpy(value)
        except ValueError as err:  # a tensor of the wrong rank: say which key
            raise ValueError(f"VAE state dict: key {key!r}: {err}") from None
    return flat


def load_vae_from_torch(
    state_dict: Mapping[str, object], config: vae.VAEConfig, *, dtype=jnp.float32
) -> vae.AutoencoderKL:
    """Build the VAE abstractly (no random initialisation) and fill it strictly from `state_dict`."""
    model = nnx.eval_shape(lambda: vae.AutoencoderKL(config, rngs=nnx.Rngs(0), dtype=dtype))
    state.assign(model, vae_flat_from_torch(state_dict), what="VAE")
    return model
