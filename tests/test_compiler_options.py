"""The sampling programs' XLA options: the memory-minimising scheduler on CPU, nothing elsewhere; the
scheduler reorders work without changing a single value."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lavie_jax import compiler_options
from lavie_jax.models import unet3d


def test_options_per_backend_and_env(monkeypatch):
    monkeypatch.delenv(compiler_options.ENV_VAR, raising=False)
    assert compiler_options.sampling("cpu") == {
        "xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"
    }
    assert compiler_options.sampling("gpu") == {} and compiler_options.sampling("tpu") == {}
    monkeypatch.setenv(compiler_options.ENV_VAR, "default")
    assert compiler_options.sampling("cpu") == {}
    monkeypatch.setenv(compiler_options.ENV_VAR, "fast")
    with pytest.raises(ValueError, match="LAVIE_JAX_XLA_SCHEDULER='fast'; expected 'memory'"):
        compiler_options.sampling("cpu")


def test_memory_scheduler_gives_identical_unet_output(monkeypatch):
    monkeypatch.delenv(compiler_options.ENV_VAR, raising=False)
    config = unet3d.UNet3DConfig(
        block_out_channels=(32, 64),
        layers_per_block=1,
        num_attention_heads=1,
        cross_attention_dim=32,
        norm_num_groups=8,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        attention_impl="chunked",
    )
    graph, params = nnx.split(unet3d.UNet3D(config, rngs=nnx.Rngs(0)))
    keys = jax.random.split(jax.random.key(0), 2)
    x = jax.random.normal(keys[0], (2, 4, 16, 16, 4))
    ctx = jax.random.normal(keys[1], (2, 7, 32))
    t = jnp.array([10, 900])
    lowered = jax.jit(lambda p, x, t, c: nnx.merge(graph, p)(x, t, c)).lower(params, x, t, ctx)
    default = lowered.compile()
    memory = lowered.compile(compiler_options=compiler_options.sampling("cpu"))
    np.testing.assert_array_equal(
        np.asarray(default(params, x, t, ctx)), np.asarray(memory(params, x, t, ctx))
    )
