"""Flat parameter dictionaries ↔ NNX modules, with strict accounting.

A *flat state* maps dotted parameter paths of our NNX modules (``down_blocks.0.resnets.1.conv1.kernel``)
to arrays. Converters produce one from a PyTorch state dict; `assign` writes it into a module and
fails, listing every name, when anything is missing, unexpected or mis-shaped. Nothing is ever
left at its random initialisation silently.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np
from flax import nnx


def path_to_name(path: tuple) -> str:
    """``('down_blocks', 0, 'conv1', 'kernel')`` → ``'down_blocks.0.conv1.kernel'``."""
    return ".".join(str(p) for p in path)


def flat_params(module: nnx.Module) -> dict[str, jnp.ndarray]:
    """Every ``nnx.Param`` of `module` keyed by its dotted path."""
    return {
        path_to_name(path): var.get_value() for path, var in nnx.to_flat_state(nnx.state(module, nnx.Param))
    }


class StateMismatchError(ValueError):
    """Raised when a flat state does not fill a module exactly."""


def check_complete(expected: Mapping[str, tuple], given: Mapping[str, np.ndarray], what: str) -> None:
    """Raise `StateMismatchError` listing missing, unexpected and mis-shaped names."""
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    misshaped = sorted(
        f"{k}: got {tuple(np.shape(given[k]))}, expected {tuple(expected[k])}"
        for k in set(expected) & set(given)
        if tuple(np.shape(given[k])) != tuple(expected[k])
    )
    if missing or unexpected or misshaped:
        lines = [f"{what}: the weights do not match the model"]
        for title, names in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
            if names:
                lines.append(f"  {len(names)} {title}:")
                lines.extend(f"    {n}" for n in names)
        raise StateMismatchError("\n".join(lines))


def assign(module: nnx.Module, flat: Mapping[str, np.ndarray], what: str = "model") -> None:
    """Write `flat` into `module` in place; every parameter exactly once, shapes checked.

    Values keep the dtype of the module's parameter (sources are cast, e.g. fp16 → fp32). Works on
    abstract modules from ``nnx.eval_shape`` too, so loading never pays for a random initialisation.
    """
    state = nnx.state(module, nnx.Param)
    variables = {path_to_name(path): var for path, var in nnx.to_flat_state(state)}
    check_complete({k: v.get_value().shape for k, v in variables.items()}, flat, what)
    for name, var in variables.items():
        var.set_value(jnp.asarray(np.asarray(flat[name]), dtype=var.get_value().dtype))
    nnx.update(module, state)
