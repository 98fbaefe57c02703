"""Training the text encoder with the UNet (``config.train_text_encoder``).

LaVie keeps its CLIP text encoder frozen. A small model trained from scratch on a random encoder
reads its prompts poorly (a word whose embedding happens to differ little from its alternatives
barely moves the context); with this option the diffusion loss trains the encoder too. The trained
model is then `UNetWithTextEncoder`: its parameters are ``{"unet": …, "text_encoder": …}``, one
optimizer and one EMA over both, and the export writes both components.
"""

from __future__ import annotations

from flax import nnx


class UNetWithTextEncoder(nnx.Module):
    """The stage's UNet and the text encoder that makes its context, trained together."""

    def __init__(self, unet: nnx.Module, text_encoder: nnx.Module):
        self.unet = unet
        self.text_encoder = text_encoder


def parts(model: nnx.Module) -> tuple[nnx.Module, nnx.Module | None]:
    """``(unet, trained text encoder or None)`` of a trained model."""
    if isinstance(model, UNetWithTextEncoder):
        return model.unet, model.text_encoder
    return model, None
