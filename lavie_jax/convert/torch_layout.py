"""PyTorch → channels-last tensor layouts and the parameter-name suffixes that go with them.

Linear ``(out, in)`` → kernel ``(in, out)``; Conv2d ``(O, I, kh, kw)`` → ``(kh, kw, I, O)``;
Conv3d ``(O, I, kt, kh, kw)`` → ``(kt, kh, kw, I, O)``; a 1×1 conv used as a Linear ``(O, I, 1, 1)``
→ ``(I, O)``; norms' ``weight`` → ``scale``; Embedding ``weight`` → ``embedding``. Every value
becomes a numpy array without a copy: float32, float16 and bfloat16 ones keep their dtype (the writer,
`streaming.save_safetensors`, casts each tensor as it writes it, `state.assign` as it loads it; the
upcast is exact), so a half-precision source is never held in float32 as a whole. Other dtypes are
cast to float32.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16))


def to_numpy(value) -> np.ndarray:
    """A torch tensor or numpy array → numpy, viewing the same memory when it is float32, float16 or
    bfloat16 (torch's bfloat16 as ml_dtypes'); any other dtype is cast to float32."""
    if hasattr(value, "detach"):  # torch.Tensor
        value = value.detach().to("cpu")
        if str(value.dtype) == "torch.bfloat16":  # numpy has no bfloat16: view the bits
            import torch

            return value.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        value = value.numpy()
    value = np.asarray(value)
    return value if value.dtype in FLOAT_DTYPES else value.astype(np.float32)


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
