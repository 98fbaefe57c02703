"""Reading PyTorch weights safely: safetensors (no torch needed), pickles only with
``torch.load(weights_only=True)``, diffusers folders and single original-layout files.

Nothing is read into process memory up front: a safetensors file becomes read-only numpy views of one
memory map, a (zip) pickle ``torch.load(mmap=True)`` tensors. Their pages are read into the page cache
as a conversion touches each tensor, so converting a full-size model holds it once
(tests/test_convert_full_size.py).
"""

from __future__ import annotations

import json
import math
import mmap
import os
import pathlib

import ml_dtypes
import numpy as np

WEIGHT_NAMES = {
    "unet": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
    "vae": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
    "text_encoder": ("model.safetensors", "pytorch_model.bin"),
}
# safetensors' dtype names → numpy (bfloat16 is ml_dtypes', as JAX's).
SAFETENSORS_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": ml_dtypes.bfloat16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def load_state_dict(path: str | os.PathLike) -> dict[str, object]:
    """A ``.safetensors`` file (read-only numpy views of a memory map) or a PyTorch pickle
    (``.pt``/``.ckpt``/``.bin``: tensors, memory-mapped when the file is a zip).

    Pickles are opened with ``weights_only=True``: a file that needs arbitrary objects is refused.
    A LaVie-style ``{"ema": state_dict, ...}`` or Lightning-style ``{"state_dict": ...}`` is unwrapped
    (``ema`` preferred, as LaVie's ``find_model`` does).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        try:
            return load_safetensors(path)
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


def load_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file as a read-only numpy view of one memory map of the file (the
    format: an 8-byte little-endian header length, a JSON header of dtypes, shapes and byte ranges, then
    the data). Nothing is read until a tensor is used; what is read stays in the page cache, which the
    kernel can take back, instead of being copied into process memory as ``safetensors.numpy.load_file``
    does."""
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(length))
        size = os.fstat(f.fileno()).st_size
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    begin, tensors = 8 + length, {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape = np.dtype(SAFETENSORS_DTYPES[info["dtype"]]), tuple(info["shape"])
        start, end = info["data_offsets"]
        if end - start != math.prod(shape) * dtype.itemsize or begin + end > size:
            raise ValueError(
                f"tensor {name!r}: bytes {start}..{end} do not hold {info['dtype']}{list(shape)}"
            )
        tensors[name] = np.frombuffer(data, dtype, math.prod(shape), begin + start).reshape(shape)
    return tensors


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
