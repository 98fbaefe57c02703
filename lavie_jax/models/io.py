"""Model components on disk: ``config.json`` (our own schema) + ``model.safetensors`` keyed by our paths.

A component folder (``unet/``, ``vae/``, ``text_encoder/``) is written by `save_component` and read
by `load_component`, which builds the module abstractly (``nnx.eval_shape``: no random
initialisation of hundreds of millions of parameters) and fills it strictly with `state.assign`.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Callable

import ml_dtypes
import numpy as np
import safetensors.numpy
from flax import nnx

from lavie_jax.convert import state

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
STORAGE_DTYPES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16, "float16": np.float16}


def save_component(
    folder: str | os.PathLike, module: nnx.Module, config: dict, *, kind: str, dtype: str = "float32"
) -> None:
    """Write ``config.json`` (with ``_kind``) and the module's parameters as safetensors."""
    save_flat(folder, state.flat_params(module), config, kind=kind, dtype=dtype)


def save_flat(
    folder: str | os.PathLike, flat: dict, config: dict, *, kind: str, dtype: str = "float32"
) -> None:
    """Like `save_component` from a flat ``{path: array}`` dict (the converter never builds modules)."""
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"save_component: dtype={dtype!r}; expected one of {sorted(STORAGE_DTYPES)}")
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # Contiguous copies: safetensors writes raw buffers, and converted kernels are often transposed views.
    tensors = {k: np.ascontiguousarray(np.asarray(v).astype(STORAGE_DTYPES[dtype])) for k, v in flat.items()}
    safetensors.numpy.save_file(tensors, str(folder / WEIGHTS_NAME))
    (folder / CONFIG_NAME).write_text(json.dumps({"_kind": kind, **config}, indent=2) + "\n")


def read_config(folder: str | os.PathLike, *, kind: str) -> dict:
    """The component's config dict (without ``_kind``); errors name the folder and what is missing."""
    folder = pathlib.Path(folder)
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise ValueError(f"{kind} folder {str(folder)!r} has no {CONFIG_NAME}")
    config = json.loads(path.read_text())
    found = config.pop("_kind", None)
    if found != kind:
        raise ValueError(f"{path}: _kind={found!r}, expected {kind!r}")
    return config


def load_component(
    folder: str | os.PathLike, *, kind: str, build: Callable[[dict], nnx.Module]
) -> nnx.Module:
    """Build the module from its config without initialising it, then fill it from the safetensors file."""
    folder = pathlib.Path(folder)
    config = read_config(folder, kind=kind)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise ValueError(f"{kind} folder {str(folder)!r} has no {WEIGHTS_NAME}")
    module = nnx.eval_shape(lambda: build(config))
    flat = {k: v.astype(np.float32, copy=False) for k, v in safetensors.numpy.load_file(str(weights)).items()}
    state.assign(module, flat, what=f"{kind} ({weights})")
    return module
