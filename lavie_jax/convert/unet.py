"""diffusers ``UNet2DConditionModel`` / LaVie UNet state dicts → our NNX `UNet3D`.

LaVie's names are diffusers' plus the temporal ones — base/interpolation ``attn_temp``,
``norm_temp``, ``time_rel_pos_bias``; VSR ``resblock_temporal``, ``attn_temporal``,
``norm_temporal``, ``{down,up}_temporal_blocks.N``, ``mid_temporal_block`` — so one renaming serves
all. Transposes: convs OIHW → HWIO and Conv3d ``(O, I, k, 1, 1)`` → ``(k, 1, 1, I, O)``, Linear and
the 1×1-conv ``proj_in/proj_out`` → ``(in, out)``, norms' weight → scale, embeddings' weight →
embedding. ``rotary_emb.freqs`` buffers (``temporal_rotary_emb.freqs`` too) are checked to be RoPE's
constant and dropped. With ``inflate=True`` a 2-D state dict (SD 1.x, the SD ×4 upscaler) becomes a
3-D UNet whose new temporal layers are freshly initialised with ZERO output projections (weight and
bias: temporal attention ``to_out``, the temporal resnets' ``conv2`` in the transformers, the
TemporalModule3D ``shift_conv``), so it equals the 2-D model frame by frame — the paper's starting
point. (LaVie itself zero-initialises only the attention's ``to_out`` weight and ``shift_conv``.)
`fresh_temporal` makes those layers exactly as a fresh `UNet3D` would, without building one: a
full-size conversion never holds a whole random UNet besides the source.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import jax
import jax.extend.core as jax_core
import numpy as np
from flax import nnx

from lavie_jax.convert import state, torch_layout
from lavie_jax.models import positions, unet3d

_NORM = re.compile(r"(^|\.)(norm\d?|norm_temp|norm_temporal|conv_norm_out)\.weight$")
_EMBEDDING = re.compile(r"(relative_attention_bias|class_embedding)\.weight$")
_FREQS = re.compile(r"rotary_emb\.freqs$")
_TEMPORAL = re.compile(
    r"\.(attn_temp|norm_temp|attn_temporal|norm_temporal|resblock_temporal"
    r"|down_temporal_blocks|mid_temporal_block|up_temporal_blocks)\."
)
# The temporal layers' output projections: zero at inflation, so every new layer starts as identity.
_ZERO_AT_INFLATION = re.compile(
    r"\.(attn_temp\.to_out|attn_temporal\.to_out|resblock_temporal\.conv2|shift_conv)\."
)


def _check_freqs(name: str, value) -> None:
    got = torch_layout.to_numpy(value).astype(np.float32)
    want = positions.rope_frequencies(32)
    # rtol 1e-2: bfloat16 checkpoints store them rounded by up to 2^-9 ≈ 2e-3 (other formulas are far off).
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-2):
        raise ValueError(f"{name}: RoPE frequencies {got[:4]}… differ from 1/10000^(arange(0,32,2)/32)")


def unet_flat_from_torch(state_dict: Mapping[str, object]) -> dict[str, np.ndarray]:
    flat = {}
    for key, value in state_dict.items():
        if _FREQS.search(key):
            _check_freqs(key, value)
            continue
        if not key.endswith(".weight"):
            flat[key] = torch_layout.to_numpy(value)
            continue
        stem = key.removesuffix("weight")
        if _NORM.search(key):
            flat[stem + "scale"] = torch_layout.to_numpy(value)
        elif _EMBEDDING.search(key):
            flat[stem + "embedding"] = torch_layout.to_numpy(value)
        elif np.ndim(value) in (4, 5) and not re.search(r"proj_(in|out)\.weight$", key):
            flat[stem + "kernel"] = torch_layout.conv_kernel(value)
        else:
            flat[stem + "kernel"] = torch_layout.linear_kernel(value)
    return flat


FRESH_CHUNK_BYTES = 128 * 2**20  # how much of the fresh temporal layers one compiled program makes


class _FreshChunks:
    """The randomly initialised temporal parameters of ``UNet3D(config, rngs=nnx.Rngs(seed))``, made a
    chunk of ≤ `FRESH_CHUNK_BYTES` at a time. The constructor is traced once (``jax.make_jaxpr``); each
    chunk runs, under ``jax.jit``, only the equations its parameters depend on, so the 2-D layers (which a
    source replaces) are never made and one program's memory is one chunk's — XLA's scratch for a whole
    full-size model's initialisation is larger than the layers themselves. Chunks follow the sorted names,
    the order `streaming.save_safetensors` writes in; each value is handed out once and then forgotten."""

    def __init__(self, config: unet3d.UNet3DConfig, seed: int):
        self.zeroed: dict[str, jax.ShapeDtypeStruct] = {}

        def init():
            params = state.flat_params(unet3d.UNet3D(config, rngs=nnx.Rngs(seed)))
            params = {k: v for k, v in params.items() if _TEMPORAL.search("." + k)}
            self.zeroed.update(
                {
                    k: jax.ShapeDtypeStruct(v.shape, v.dtype)
                    for k, v in params.items()
                    if _ZERO_AT_INFLATION.search("." + k)
                }
            )
            return {k: v for k, v in params.items() if k not in self.zeroed}

        self.program, shapes = jax.make_jaxpr(init, return_shape=True)()
        self.shapes = dict(sorted(shapes.items()))  # a dict's leaves come in sorted key order
        self.chunks: list[list[int]] = [[]]
        self.chunk_of: list[int] = []
        size = 0
        for shape in self.shapes.values():
            nbytes = int(np.prod(shape.shape, dtype=np.int64)) * shape.dtype.itemsize
            if self.chunks[-1] and size + nbytes > FRESH_CHUNK_BYTES:
                self.chunks.append([])
                size = 0
            self.chunk_of.append(len(self.chunks) - 1)
            self.chunks[-1].append(len(self.chunk_of) - 1)
            size += nbytes
        self.ready: dict[int, np.ndarray] = {}

    def take(self, index: int) -> np.ndarray:
        if index not in self.ready:
            wanted = self.chunks[self.chunk_of[index]]
            for i, value in zip(wanted, jax.jit(self._subprogram(wanted))()):
                self.ready[i] = np.asarray(value)
        return self.ready.pop(index)

    def _subprogram(self, outputs: list[int]):
        """The traced constructor cut down to `outputs` (dead-code elimination on the jaxpr)."""
        jaxpr = self.program.jaxpr
        outvars = [jaxpr.outvars[i] for i in outputs]
        live = {v for v in outvars if isinstance(v, jax_core.Var)}
        eqns = []
        for eqn in reversed(jaxpr.eqns):
            if eqn.effects or any(v in live for v in eqn.outvars):
                eqns.append(eqn)
                live.update(v for v in eqn.invars if isinstance(v, jax_core.Var))
        kept = set(outputs)  # ascending, as the chunks are
        info = jaxpr.debug_info
        debug = info._replace(
            result_paths=info.filter_result_paths([i in kept for i in range(len(jaxpr.outvars))])
        )
        cut = jax_core.Jaxpr(jaxpr.constvars, jaxpr.invars, outvars, eqns[::-1], jaxpr.effects, debug)
        return jax_core.jaxpr_as_fun(jax_core.ClosedJaxpr(cut, self.program.consts))


class FreshParameter:
    """A fresh temporal parameter whose value is made (with its chunk) when first read: ``np.asarray``."""

    def __init__(self, chunks: _FreshChunks, index: int, shape: jax.ShapeDtypeStruct):
        self.chunks, self.index = chunks, index
        self.shape, self.dtype = tuple(shape.shape), shape.dtype

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        value = self.chunks.take(self.index)
        return value if dtype is None else value.astype(dtype)


def fresh_temporal(config: unet3d.UNet3DConfig, seed: int = 0) -> dict[str, object]:
    """The temporal parameters of ``UNet3D(config, rngs=nnx.Rngs(seed))``, equal to that module's, and
    only those, without making the module: the randomly initialised ones as `FreshParameter` (made a
    chunk at a time as they are written), those `inflate` zeroes as ``jax.ShapeDtypeStruct``. A
    `FreshParameter` is meant to be read once (a second read makes its chunk again)."""
    chunks = _FreshChunks(config, seed)
    fresh = {name: FreshParameter(chunks, i, shape) for i, (name, shape) in enumerate(chunks.shapes.items())}
    return {**chunks.zeroed, **fresh}


def inflate(flat: dict[str, np.ndarray], fresh: Mapping[str, object]) -> dict[str, object]:
    """Fill the temporal parameters a 2-D state dict lacks from `fresh` (a fresh model's flat parameters,
    or `fresh_temporal`'s, kept as they are), with the temporal layers' output projections zeroed (weight
    and bias) so each starts as the identity. The zeros are ``np.zeros``, whose pages take no memory
    unless written to (the writer only reads them)."""
    out = dict(flat)
    for name, value in fresh.items():
        if name in out or not _TEMPORAL.search("." + name):
            continue
        out[name] = np.zeros(value.shape, value.dtype) if _ZERO_AT_INFLATION.search("." + name) else value
    return out


def load_unet_from_torch(
    state_dict: Mapping[str, object],
    config: unet3d.UNet3DConfig,
    *,
    inflate_temporal: bool = False,
    seed: int = 0,
) -> unet3d.UNet3D:
    flat = unet_flat_from_torch(state_dict)
    if inflate_temporal:
        model = unet3d.UNet3D(config, rngs=nnx.Rngs(seed))
        flat = inflate(flat, state.flat_params(model))
    else:
        model = nnx.eval_shape(lambda: unet3d.UNet3D(config, rngs=nnx.Rngs(seed)))
    state.assign(model, flat, what="UNet")
    return model
