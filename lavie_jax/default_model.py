"""The default model that ships with the package: a small cascade trained on the synthetic set.

``path()`` is the folder holding its ``base/``, ``interpolation/`` and ``vsr/`` model folders (package
data under ``lavie_jax/assets/default_model``), what ``python -m lavie_jax.sample`` uses when no
``--model`` is given. It knows the synthetic set's vocabulary only: prompts like "a red circle moving
left, slowly" (colours red/green/blue/yellow/purple, shapes circle/square/triangle, directions
left/right/up/down). How it was made: tools/train_default_model.sh; its card: ``MODEL_CARD.md``.
"""

from __future__ import annotations

import pathlib

ROOT = pathlib.Path(__file__).parent / "assets" / "default_model"


def path() -> pathlib.Path:
    """The shipped cascade's folder; a clear error when this installation lacks it."""
    if not (ROOT / "base").is_dir():
        raise FileNotFoundError(
            f"the default model is not installed at {ROOT} (a source checkout without package data?); "
            "pass --model DIR, or rebuild it with tools/train_default_model.sh"
        )
    return ROOT
