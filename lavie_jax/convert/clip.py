"""transformers ``CLIPTextModel`` state dict → our NNX `CLIPTextModel`.

Keys with or without the ``text_model.`` prefix (transformers ≥ 5.6 saves without it). The
``position_ids`` buffer is known-unused; everything else must map, or the listing error is raised.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
from flax import nnx

from lavie_jax.convert import state, torch_layout
from lavie_jax.models import clip_text

KNOWN_UNUSED = re.compile(r"^(text_model\.)?embeddings\.position_ids$")


def clip_text_flat_from_torch(state_dict: Mapping[str, object]) -> dict[str, np.ndarray]:
    flat = {}
    for key, value in state_dict.items():
        if KNOWN_UNUSED.match(key):
            continue
        name = key.removeprefix("text_model.")
        if name.endswith("_embedding.weight"):
            flat[name.removesuffix("weight") + "embedding"] = torch_layout.to_numpy(value)
        elif re.search(r"(layer_norm\d?|final_layer_norm)\.weight$", name):
            flat[name.removesuffix("weight") + "scale"] = torch_layout.to_numpy(value)
        elif name.endswith(".weight"):
            flat[name.removesuffix("weight") + "kernel"] = torch_layout.linear_kernel(value)
        else:
            flat[name] = torch_layout.to_numpy(value)
    return flat


def load_text_encoder_from_torch(
    state_dict: Mapping[str, object], config: clip_text.CLIPTextConfig
) -> clip_text.CLIPTextModel:
    model = nnx.eval_shape(lambda: clip_text.CLIPTextModel(config, rngs=nnx.Rngs(0)))
    state.assign(model, clip_text_flat_from_torch(state_dict), what="CLIP text encoder")
    return model
