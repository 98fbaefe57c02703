"""Reading PyTorch weights safely: safetensors (no torch needed), pickles only with
``torch.load(weights_only=True)``, diffusers folders and single original-layout files."""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np

WEIGHT_NAMES = {
    "unet": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
    "vae": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
    "text_encoder": ("model.safetensors", "pytorch_model.bin"),
}


def load_state_dict(path: str | os.PathLike) -> dict[str, object]:
    """A ``.safetensors`` file (numpy arrays) or a PyTorch pickle (``.pt``/``.ckpt``/``.bin``: tensors).

    Pickles are opened with ``weights_only=True``: a file that needs arbitrary objects is refused.
    A LaVie-style ``{"ema": state_dict, ...}`` or Lightning-style ``{"state_dict": ...}`` is unwrapped
    (``ema`` preferred, as LaVie's ``find_model`` does).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        import safetensors.numpy

        try:
            return dict(safetensors.numpy.load_file(str(path)))
        except Exception as err:  # a truncated or foreign file
            raise ValueError(f"{path}: not a readable safetensors file ({err})") from err
    try:
        import torch
    except ImportError as err:
        raise ValueError(
            f"{path}: reading PyTorch pickles needs torch: pip install 'lavie_jax[convert]'"
        ) from err
    try:
        obj = _torch_load(torch, path)
    except Exception as err:
        raise ValueError(
            f"{path}: refused — it cannot be loaded with torch.load(weights_only=True) (it holds objects "
            f"other than tensors and plain containers, or it is truncated/corrupt): "
            f"{type(err).__name__}: {str(err)[:300]}"
        ) from err
    if isinstance(obj, dict) and "ema" in obj and isinstance(obj["ema"], dict):
        obj = obj["ema"]
    elif isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(hasattr(v, "shape") for v in obj.values()):
        raise ValueError(
            f"{path}: expected a state dict of tensors (optionally under 'ema'), got {type(obj).__name__}"
        )
    return obj


def _torch_load(torch, path: pathlib.Path):
    """``torch.load(weights_only=True)``, memory-mapped when the file is in the zip format (every file
    ``torch.save`` has written since 1.6): tensors stay in the page cache instead of being copied into
    process memory, so a full-size conversion holds the model once. Legacy pickles are read whole."""
    import zipfile

    mmap = zipfile.is_zipfile(path)
    return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)


def read_json(path: pathlib.Path) -> dict:
    if not path.is_file():
        raise ValueError(f"missing {path}")
    return json.loads(path.read_text())


def diffusers_component(folder: str | os.PathLike, name: str) -> tuple[dict, dict[str, object]]:
    """``(config, state_dict)`` of ``folder/name`` in a diffusers pipeline folder."""
    sub = pathlib.Path(folder) / name
    if not sub.is_dir():
        raise ValueError(f"diffusers folder {str(folder)!r} has no {name}/ component")
    for file in WEIGHT_NAMES[name]:
        if (sub / file).is_file():
            return read_json(sub / "config.json"), load_state_dict(sub / file)
    raise ValueError(f"{sub}: none of {WEIGHT_NAMES[name]} found")


def shapes(state_dict: dict[str, object]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(np.shape(v)) for k, v in state_dict.items()}
