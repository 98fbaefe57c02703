"""Writing converted weights one tensor at a time, so a full-size conversion holds one copy of the model.

`save_safetensors` writes the safetensors header from the shapes alone, then each tensor cast to the
storage dtype, made contiguous and written before the next one is touched: at most one converted
tensor exists besides the source (which a ``torch.load(mmap=True)`` keeps in the page cache).
`write_folder` is `model_folder.write` on top of it: the same layout, temporary folder and final
rename, but no ``{name: contiguous copy}`` dict of the whole model.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile
from collections.abc import Mapping

import numpy as np

from lavie_jax.models import io
from lavie_jax.pipelines import model_folder

# numpy storage dtype → safetensors dtype name (the file format's own spelling).
SAFETENSORS_DTYPES = {"float32": "F32", "bfloat16": "BF16", "float16": "F16"}
_ALIGN = 8  # safetensors pads the JSON header with spaces to a multiple of 8 bytes


def save_safetensors(path: str | os.PathLike, flat: Mapping[str, object], *, dtype: str = "float32") -> None:
    """Write ``{name: array}`` (numpy arrays or views of torch memory) as one safetensors file in `dtype`."""
    if dtype not in SAFETENSORS_DTYPES:
        raise ValueError(f"save_safetensors: dtype={dtype!r}; expected one of {sorted(SAFETENSORS_DTYPES)}")
    target = np.dtype(io.STORAGE_DTYPES[dtype])
    names = sorted(flat)
    header, offset = {}, 0
    for name in names:
        shape = [int(n) for n in np.shape(flat[name])]
        nbytes = int(np.prod(shape, dtype=np.int64)) * target.itemsize
        header[name] = {
            "dtype": SAFETENSORS_DTYPES[dtype],
            "shape": shape,
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % _ALIGN)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for name in names:
            # One tensor at a time: cast (a no-op view for float32 sources) and lay out contiguously.
            value = np.ascontiguousarray(np.asarray(flat[name]).astype(target, copy=False))
            f.write(value.reshape(-1).view(np.uint8).data)
            del value
    if os.path.getsize(path) != 8 + len(text) + offset:  # pragma: no cover - a write that went wrong
        raise OSError(f"{path}: wrote {os.path.getsize(path)} bytes, expected {8 + len(text) + offset}")


def write_folder(
    folder: str | os.PathLike,
    *,
    stage: str,
    components: dict[str, tuple[Mapping, dict]],
    tokenizer,
    scheduler_config: dict,
    dtype: str = "float32",
    **index_extra,
) -> pathlib.Path:
    """`model_folder.write` (same files, same checks, temporary folder renamed at the end) with every
    component's weights streamed by `save_safetensors`."""
    folder = pathlib.Path(folder)
    if folder.exists():
        raise ValueError(f"output folder {str(folder)!r} already exists; choose a new path")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for name, (flat, config) in components.items():
            (tmp / name).mkdir()
            save_safetensors(tmp / name / io.WEIGHTS_NAME, flat, dtype=dtype)
            (tmp / name / io.CONFIG_NAME).write_text(json.dumps({"_kind": name, **config}, indent=2) + "\n")
        tokenizer.save(tmp / "tokenizer")
        model_folder.write_scheduler_config(tmp, scheduler_config)
        model_folder.write_index(tmp, stage, **index_extra)
        model_folder.check_folder(tmp, stage)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
