"""The model folder: what `tools/convert_sd.py` and training export write, and pipelines read.

    DIR/model_index.json      {"stage": "base", "components": {...}, "lavie_jax_version": ...}
    DIR/unet/                 config.json + model.safetensors (our parameter paths)
    DIR/vae/                  config.json + model.safetensors
    DIR/text_encoder/         config.json + model.safetensors
    DIR/tokenizer/            vocab.json + merges.txt (transformers CLIPTokenizer files)
    DIR/scheduler/config.json the stage's sampling conventions (schedule, sampler, CFG, defaults)

Everything is checked before anything is compiled, and errors name the folder and what is missing.
"""

from __future__ import annotations

import json
import os
import pathlib

import lavie_jax

INDEX_NAME = "model_index.json"
STAGES = ("base", "interpolation", "vsr")
COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
REQUIRED_FILES = {
    "unet": ("config.json", "model.safetensors"),
    "vae": ("config.json", "model.safetensors"),
    "text_encoder": ("config.json", "model.safetensors"),
    "tokenizer": ("vocab.json", "merges.txt"),
    "scheduler": ("config.json",),
}


def write_index(folder: str | os.PathLike, stage: str, **extra) -> None:
    if stage not in STAGES:
        raise ValueError(f"stage={stage!r}; expected one of {STAGES}")
    index = {
        "_class_name": "LaVieJaxModel",
        "stage": stage,
        "components": {name: name for name in COMPONENTS},
        "lavie_jax_version": lavie_jax.__version__,
        **extra,
    }
    pathlib.Path(folder, INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")


def check_folder(folder: str | os.PathLike, stage: str | None = None) -> dict:
    """Validate a model folder; returns its index. Raises ValueError listing every missing file."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise ValueError(f"model folder {str(folder)!r} does not exist or is not a directory")
    index_path = folder / INDEX_NAME
    if not index_path.is_file():
        raise ValueError(
            f"model folder {str(folder)!r} has no {INDEX_NAME}; is it a converted lavie_jax model?"
        )
    index = json.loads(index_path.read_text())
    if stage is not None and index.get("stage") != stage:
        raise ValueError(
            f"model folder {str(folder)!r} holds stage {index.get('stage')!r}, expected {stage!r}"
        )
    missing = [
        f"{name}/{file}"
        for name, files in REQUIRED_FILES.items()
        for file in files
        if not (folder / index.get("components", {}).get(name, name) / file).is_file()
    ]
    if missing:
        raise ValueError(f"model folder {str(folder)!r} is incomplete; missing: {', '.join(missing)}")
    return index


def read_scheduler_config(folder: str | os.PathLike) -> dict:
    return json.loads(pathlib.Path(folder, "scheduler", "config.json").read_text())


def write_scheduler_config(folder: str | os.PathLike, config: dict) -> None:
    path = pathlib.Path(folder, "scheduler")
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def save(
    folder: str | os.PathLike,
    *,
    stage: str,
    unet,
    vae,
    text_encoder,
    tokenizer,
    scheduler_config: dict,
    dtype: str = "float32",
    **index_extra,
) -> pathlib.Path:
    """Write a complete model folder from modules (see `write` for the rules)."""
    from lavie_jax.convert import state

    components = {
        name: (state.flat_params(module), module.config.to_dict())
        for name, module in (("unet", unet), ("vae", vae), ("text_encoder", text_encoder))
    }
    return write(
        folder,
        stage=stage,
        components=components,
        tokenizer=tokenizer,
        scheduler_config=scheduler_config,
        dtype=dtype,
        **index_extra,
    )


def write(
    folder: str | os.PathLike,
    *,
    stage: str,
    components: dict[str, tuple[dict, dict]],
    tokenizer,
    scheduler_config: dict,
    dtype: str = "float32",
    **index_extra,
) -> pathlib.Path:
    """Write a model folder from ``{"unet"|"vae"|"text_encoder": (flat params, config dict)}``.

    It is written into a temporary folder next to `folder` and renamed into place at the end, so a
    failure never leaves a half-written folder behind; an existing `folder` is refused.
    """
    import shutil
    import tempfile

    from lavie_jax.models import io

    folder = pathlib.Path(folder)
    if folder.exists():
        raise ValueError(f"output folder {str(folder)!r} already exists; choose a new path")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for name, (flat, config) in components.items():
            io.save_flat(tmp / name, flat, config, kind=name, dtype=dtype)
        tokenizer.save(tmp / "tokenizer")
        write_scheduler_config(tmp, scheduler_config)
        write_index(tmp, stage, **index_extra)
        check_folder(tmp, stage)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
