"""Sparse-causal self-attention: the interpolation model's ``attn1`` (spec §3.2, Tune-A-Video style).

The queries of frame i are frame i's tokens; its keys and values are the tokens of frame 0 followed
by those of frame max(i − 1, 0), i.e. ``2·H·W`` keys. Same parameters as a spatial self-attention
(``to_q/to_k/to_v`` without bias, ``to_out.0``).

Joint image-video batches: the last ``num_image_frames`` frames of a clip are independent images,
and each attends to itself only. It is given its own tokens twice (``[self, self]``), which keeps one
key length for every frame and equals plain self-attention exactly: duplicating every key scales the
softmax numerator and denominator alike.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lavie_jax.models import attention, attention_core


def key_frames(num_frames: int, num_image_frames: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(first, previous)``: for each frame, the two frames whose tokens it attends to, ``(F,)`` each.

    Video frames i < Fv: ``(0, max(i − 1, 0))``; image frames: ``(i, i)``.
    """
    fv = num_frames - num_image_frames
    frames = np.arange(num_frames)
    first = np.where(frames < fv, 0, frames)
    previous = np.where(frames < fv, np.maximum(frames - 1, 0), frames)
    return first, previous


class SparseCausalAttention(attention.Attention):
    def __call__(self, x: jax.Array, *, num_frames: int, num_image_frames: int = 0) -> jax.Array:
        """``x ((B·F), HW, C)`` → ``((B·F), HW, C)``."""
        bf, hw = x.shape[:2]
        if bf % num_frames:
            raise ValueError(
                f"SparseCausalAttention: {bf} rows are not a multiple of num_frames={num_frames}"
            )
        b = bf // num_frames
        first, previous = key_frames(num_frames, num_image_frames)

        def gather(y):  # ((B·F), HW, C) → ((B·F), 2·HW, C): [frame first[i] | frame previous[i]]
            y = y.reshape(b, num_frames, hw, -1)  # (B, F, HW, C)
            pairs = [y[:, first], y[:, previous]]  # 2 × (B, F, HW, C)
            return jnp.concatenate(pairs, axis=2).reshape(bf, 2 * hw, -1)

        q = self.split_heads(self.to_q(x))  # ((B·F), HW, H, D)
        k = self.split_heads(gather(self.to_k(x)))  # ((B·F), 2·HW, H, D)
        v = self.split_heads(gather(self.to_v(x)))
        out = attention_core.attend(q, k, v, scale=q.shape[-1] ** -0.5, impl=self.impl)
        return self.project_out(out)
