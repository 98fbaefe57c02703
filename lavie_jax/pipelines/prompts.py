"""Prompts → token ids for classifier-free guidance: the prompts and one negative prompt per prompt."""

from __future__ import annotations

import numpy as np

from lavie_jax.models import tokenizer as tokenizer_lib


def normalize(prompts: list[str] | str) -> list[str]:
    """A string or a non-empty list of strings → a list; anything else is an error naming it."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"prompts={prompts!r}: expected a non-empty list of strings")
    return prompts


def tokenize(
    tok: tokenizer_lib.Tokenizer, prompts: list[str], negative_prompt: str, suffix: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """``(B, L)`` ids of ``prompt + suffix`` and ``(B, L)`` ids of the negative prompt."""
    return tok([p + suffix for p in prompts]), tok([negative_prompt] * len(prompts))
