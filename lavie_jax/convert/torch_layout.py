"""PyTorch → channels-last tensor layouts and the parameter-name suffixes that go with them.

Linear ``(out, in)`` → kernel ``(in, out)``; Conv2d ``(O, I, kh, kw)`` → ``(kh, kw, I, O)``;
Conv3d ``(O, I, kt, kh, kw)`` → ``(kt, kh, kw, I, O)``; a 1×1 conv used as a Linear ``(O, I, 1, 1)``
→ ``(I, O)``; norms' ``weight`` → ``scale``; Embedding ``weight`` → ``embedding``. Every value is
cast to float32 numpy (fp16/bf16 sources included).
"""

from __future__ import annotations

import numpy as np


def to_numpy(value) -> np.ndarray:
    """A torch tensor, numpy array or safetensors slice → float32 numpy (bf16 goes through float32)."""
    if hasattr(value, "detach"):  # torch.Tensor
        value = value.detach().to("cpu")
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        value = value.numpy()
    return np.asarray(value).astype(np.float32, copy=False)  # no copy of float32 sources


def linear_kernel(weight: np.ndarray) -> np.ndarray:
    """Linear ``(out, in)`` (or a 1×1 conv ``(out, in, 1, 1)``) → ``(in, out)``."""
    weight = to_numpy(weight)
    if weight.ndim == 4 and weight.shape[2:] == (1, 1):
        weight = weight[:, :, 0, 0]
    if weight.ndim != 2:
        raise ValueError(f"expected a Linear weight (out, in), got shape {weight.shape}")
    return weight.T


def conv_kernel(weight: np.ndarray) -> np.ndarray:
    """Conv ``(O, I, *k)`` → ``(*k, I, O)`` for 2-D and 3-D convolutions."""
    weight = to_numpy(weight)
    if weight.ndim not in (4, 5):
        raise ValueError(
            f"expected a conv weight (O, I, kh, kw) or (O, I, kt, kh, kw), got shape {weight.shape}"
        )
    return np.transpose(weight, (*range(2, weight.ndim), 1, 0))
