"""Shared test settings: fp32 on CPU, quiet threads, deterministic torch."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

try:  # torch is a test extra; it is the reference implementation, not a dependency
    import torch

    torch.manual_seed(0)
except ImportError:  # pragma: no cover
    pass
