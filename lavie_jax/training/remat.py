"""Rematerialise the UNet's blocks: keep only each block's inputs for the backward pass and recompute
its activations there (``nnx.remat`` per down/mid/up block; Chen et al. 2016's √n checkpointing).

The model code stays free of training knobs: `rematerialize_blocks` gives each block instance a
subclass whose ``__call__`` runs the original one under ``nnx.remat``. Parameter paths, shapes and
numerics are unchanged; only the memory/compute trade-off of differentiating through it changes.
Keyword arguments (``num_image_frames``) are static Python values, closed over, not traced.
"""

from __future__ import annotations

import functools

from flax import nnx


@functools.cache
def _remat_class(cls: type) -> type:
    def __call__(self, *args, **static_kwargs):
        def run(module, *inputs):
            return cls.__call__(module, *inputs, **static_kwargs)

        return nnx.remat(run)(self, *args)

    return type(f"Remat{cls.__name__}", (cls,), {"__call__": __call__, "__module__": __name__})


def rematerialize_blocks(unet: nnx.Module) -> int:
    """Wrap every block of ``unet.down_blocks``, ``unet.mid_block`` and ``unet.up_blocks`` in place;
    returns how many blocks were wrapped."""
    blocks = [*unet.down_blocks, unet.mid_block, *unet.up_blocks]
    for block in blocks:
        block.__class__ = _remat_class(type(block))
    return len(blocks)
