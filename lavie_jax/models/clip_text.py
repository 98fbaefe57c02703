"""The CLIP text transformer (Radford et al. 2021) in NNX: SD 1.x's ViT-L/14 text tower and the
OpenCLIP-H tower of the ×4 upscaler (spec §2.4, §4.3).

Pre-LN transformer with a causal mask; ``quick_gelu`` (OpenAI) or ``gelu`` (OpenCLIP) MLPs; the
output is ``last_hidden_state`` after the final LayerNorm. SD passes no padding mask. Parameter paths
mirror transformers' ``CLIPTextModel`` (``encoder.layers.N.self_attn.q_proj``, …).
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
from flax import nnx

from lavie_jax.models import io, norms

ACTIVATIONS = {
    "quick_gelu": lambda x: x * jax.nn.sigmoid(1.702 * x),
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
}


@dataclasses.dataclass(frozen=True)
class CLIPTextConfig:
    vocab_size: int = 49408
    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    max_position_embeddings: int = 77
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    eos_token_id: int = 49407

    def __post_init__(self):
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(
                f"CLIPTextConfig: hidden_act={self.hidden_act!r}; expected one of {sorted(ACTIVATIONS)}"
            )
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"CLIPTextConfig: hidden_size={self.hidden_size} is not divisible by "
                f"num_attention_heads={self.num_attention_heads}"
            )

    @classmethod
    def from_dict(cls, d: dict) -> CLIPTextConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"CLIPTextConfig: unknown field(s) {unknown}; expected some of {sorted(names)}")
        return cls(**d)

    @classmethod
    def from_hf_dict(cls, d: dict) -> CLIPTextConfig:
        """Read a transformers ``CLIPTextConfig`` config.json (extra fields such as dropout are ignored)."""
        d = d.get("text_config", d)
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: d[k] for k in names if k in d and d[k] is not None}
        if isinstance(values.get("eos_token_id"), list):
            values["eos_token_id"] = values["eos_token_id"][0]
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class CLIPAttention(nnx.Module):
    def __init__(self, config: CLIPTextConfig, *, rngs: nnx.Rngs, dtype=jnp.float32):
        d = config.hidden_size
        self.heads = config.num_attention_heads
        self.q_proj = nnx.Linear(d, d, dtype=dtype, rngs=rngs)
        self.k_proj = nnx.Linear(d, d, dtype=dtype, rngs=rngs)
        self.v_proj = nnx.Linear(d, d, dtype=dtype, rngs=rngs)
        self.out_proj = nnx.Linear(d, d, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        b, n, d = x.shape
        split = lambda y: y.reshape(b, n, self.heads, d // self.heads)  # (B, L, H, D)
        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        out = jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation="xla")  # (B, L, H, D)
        return self.out_proj(out.reshape(b, n, d))


class CLIPMLP(nnx.Module):
    def __init__(self, config: CLIPTextConfig, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.act = ACTIVATIONS[config.hidden_act]
        self.fc1 = nnx.Linear(config.hidden_size, config.intermediate_size, dtype=dtype, rngs=rngs)
        self.fc2 = nnx.Linear(config.intermediate_size, config.hidden_size, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc2(self.act(self.fc1(x)))


class CLIPEncoderLayer(nnx.Module):
    def __init__(self, config: CLIPTextConfig, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.layer_norm1 = norms.LayerNorm(config.hidden_size, config.layer_norm_eps, dtype=dtype)
        self.self_attn = CLIPAttention(config, rngs=rngs, dtype=dtype)
        self.layer_norm2 = norms.LayerNorm(config.hidden_size, config.layer_norm_eps, dtype=dtype)
        self.mlp = CLIPMLP(config, rngs=rngs, dtype=dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class CLIPEmbeddings(nnx.Module):
    def __init__(self, config: CLIPTextConfig, *, rngs: nnx.Rngs, dtype=jnp.float32):
        d = config.hidden_size
        self.token_embedding = nnx.Embed(config.vocab_size, d, dtype=dtype, rngs=rngs)
        self.position_embedding = nnx.Embed(config.max_position_embeddings, d, dtype=dtype, rngs=rngs)

    def __call__(self, input_ids: jax.Array) -> jax.Array:
        positions = jnp.arange(input_ids.shape[1])
        return self.token_embedding(input_ids) + self.position_embedding(positions)[None]


class CLIPEncoder(nnx.Module):
    def __init__(self, config: CLIPTextConfig, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.layers = nnx.List(
            [CLIPEncoderLayer(config, rngs=rngs, dtype=dtype) for _ in range(config.num_hidden_layers)]
        )


class CLIPTextModel(nnx.Module):
    def __init__(self, config: CLIPTextConfig, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.config = config
        self.embeddings = CLIPEmbeddings(config, rngs=rngs, dtype=dtype)
        self.encoder = CLIPEncoder(config, rngs=rngs, dtype=dtype)
        self.final_layer_norm = norms.LayerNorm(config.hidden_size, config.layer_norm_eps, dtype=dtype)

    def __call__(self, input_ids: jax.Array, *, skip_last_layers: int = 0) -> jax.Array:
        """``(B, L)`` token ids → ``(B, L, D)`` states after the final LayerNorm.

        ``skip_last_layers=k`` stops k layers early and applies the final LayerNorm to that output
        (diffusers' ``clip_skip``: k = 1 is the penultimate layer).
        """
        if input_ids.ndim != 2:
            raise ValueError(f"CLIPTextModel: input_ids must be (B, L), got shape {input_ids.shape}")
        if input_ids.shape[1] > self.config.max_position_embeddings:
            raise ValueError(
                f"CLIPTextModel: {input_ids.shape[1]} tokens exceed max_position_embeddings="
                f"{self.config.max_position_embeddings}"
            )
        if not 0 <= skip_last_layers < self.config.num_hidden_layers:
            raise ValueError(
                f"skip_last_layers={skip_last_layers}; expected 0..{self.config.num_hidden_layers - 1}"
            )
        x = self.embeddings(input_ids)  # (B, L, D)
        for layer in self.encoder.layers[: self.config.num_hidden_layers - skip_last_layers]:
            x = layer(x)
        return self.final_layer_norm(x)

    def pooled(self, input_ids: jax.Array, last_hidden_state: jax.Array) -> jax.Array:
        """The EOS token's state ``(B, D)``: the first `eos_token_id` (the highest id for legacy configs
        with ``eos_token_id == 2``, as transformers does)."""
        if self.config.eos_token_id == 2:
            index = jnp.argmax(input_ids, axis=-1)
        else:
            index = jnp.argmax(input_ids == self.config.eos_token_id, axis=-1)
        return last_hidden_state[jnp.arange(input_ids.shape[0]), index]


def load_text_encoder(folder: str | os.PathLike) -> CLIPTextModel:
    """A text-encoder component folder (``config.json`` + ``model.safetensors``) → a ready module."""
    return io.load_component(
        folder,
        kind="text_encoder",
        build=lambda d: CLIPTextModel(CLIPTextConfig.from_dict(d), rngs=nnx.Rngs(0)),
    )


def save_text_encoder(folder: str | os.PathLike, model: CLIPTextModel, *, dtype: str = "float32") -> None:
    io.save_component(folder, model, model.config.to_dict(), kind="text_encoder", dtype=dtype)
