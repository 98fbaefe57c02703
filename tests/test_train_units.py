"""Pieces of training without a UNet: objectives, caption dropout, EMA, accumulation, logs."""

import functools
import json
import struct

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import traverse_util

from lavie_jax.diffusion import schedule
from lavie_jax.training import conditioning, metrics, objectives, optimizer, remat, tensorboard
from lavie_jax.training import state as train_state


def test_keyframe_indices_follow_spec_3_3():
    # Reference built the way the original code does it: keyframes at 0,4,…,60, repeat_interleave(4), [1:-2].
    keyframes = np.arange(0, 61, 4)  # 16 base frames
    reference = np.repeat(keyframes, 4)[1:-2]
    np.testing.assert_array_equal(objectives.keyframe_indices(61), reference)
    assert reference[:8].tolist() == [0, 0, 0, 4, 4, 4, 4, 8]
    with pytest.raises(ValueError, match="num_frames=16"):
        objectives.keyframe_indices(16)


def recording_unet(calls):
    """A stand-in UNet that records what it is given and predicts zeros."""

    def apply(sample, timesteps, context, **extra):
        calls.append({"sample": sample, "timesteps": timesteps, "context": context, **extra})
        return jnp.zeros(sample.shape[:-1] + (4,))

    return apply


def test_interpolation_conditions_each_frame_on_its_keyframe():
    calls, rng = [], np.random.default_rng(0)
    latents = jnp.asarray(rng.normal(size=(2, 9, 2, 2, 4)), jnp.float32)  # 9 = 4·2 + 1 frames
    keys = objectives.example_keys(jax.random.PRNGKey(0), jnp.int32(0), 2)
    sched = schedule.make_schedule(schedule.ScheduleConfig())
    objectives.diffusion_loss(
        recording_unet(calls), latents, None, keys, stage="interpolation", schedule=sched
    )
    sample = np.asarray(calls[0]["sample"])
    assert sample.shape == (2, 9, 2, 2, 8)
    for j, k in enumerate([0, 0, 0, 4, 4, 4, 4, 8, 8]):
        np.testing.assert_array_equal(sample[:, j, ..., 4:], latents[:, k])


def test_vsr_low_res_input_is_the_downsampled_clip_noised_at_its_class_label():
    calls, rng = [], np.random.default_rng(0)
    pixels = jnp.asarray(rng.uniform(-1, 1, size=(64, 2, 8, 8, 3)), jnp.float32)
    latents = jnp.zeros((64, 2, 2, 2, 4))
    keys = objectives.example_keys(jax.random.PRNGKey(0), jnp.int32(0), 64)
    sched = schedule.make_schedule(schedule.ScheduleConfig(prediction_type="v_prediction"))
    low = schedule.make_schedule(schedule.ScheduleConfig(beta_schedule="scaled_linear"))
    objectives.diffusion_loss(
        recording_unet(calls),
        latents,
        None,
        keys,
        stage="vsr",
        schedule=sched,
        pixels=pixels,
        low_res_schedule=low,
    )
    levels = np.asarray(calls[0]["class_labels"])
    assert levels.min() >= 0 and levels.max() <= 350 and len(set(levels.tolist())) > 30
    # An example at level 0 sees (almost) the clean ×4 average-pooled clip; ᾱ_0 ≈ 1 − 1e-4.
    pooled = np.asarray(pixels).reshape(64, 2, 2, 4, 2, 4, 3).mean(axis=(3, 5))  # (B, F, 2, 2, 3)
    low_res = np.asarray(calls[0]["low_res"])
    a = np.asarray(low.alphas_cumprod)[levels][:, None, None, None, None]
    noise = (low_res - np.sqrt(a) * pooled) / np.sqrt(1 - a)  # what the noise must have been
    assert abs(noise.std() - 1.0) < 0.1 and abs(noise.mean()) < 0.1


def test_example_keys_depend_on_the_global_example_index_only():
    rng = jax.random.PRNGKey(3)
    big = objectives.example_keys(rng, jnp.int32(0), 4)
    first = objectives.example_keys(rng, jnp.int32(0), 2)
    second = objectives.example_keys(rng, jnp.int32(1), 2)
    np.testing.assert_array_equal(big, np.concatenate([first, second]))


def test_caption_dropout_replaces_whole_captions_at_the_configured_rate():
    keys = objectives.example_keys(jax.random.PRNGKey(0), jnp.int32(0), 4000)
    captions = jnp.ones((4000, 3, 5), jnp.int32) * jnp.arange(1, 4)[None, :, None]  # 3 captions per example
    empty = jnp.full((5,), 7, jnp.int32)
    dropped = np.asarray(conditioning.drop_captions(captions, empty, keys, 0.1))
    is_empty = (dropped == 7).all(-1)
    untouched = (dropped == np.asarray(captions)).all(-1)
    assert (is_empty | untouched).all()  # never a partial replacement
    assert abs(is_empty.mean() - 0.1) < 0.015  # ≈ 10 % of 12000 captions (3σ ≈ 0.008)
    assert 0.05 < is_empty[:, 1].mean() < 0.15  # image captions are dropped independently of the clip's
    assert np.corrcoef(is_empty[:, 0], is_empty[:, 1])[0, 1] < 0.05
    np.testing.assert_array_equal(conditioning.drop_captions(captions, empty, keys, 0.0), captions)
    assert (np.asarray(conditioning.drop_captions(captions, empty, keys, 1.0)) == 7).all()


def test_frame_context_gives_each_frame_its_caption():
    captions = jnp.arange(2 * 3 * 2 * 1, dtype=jnp.float32).reshape(2, 3, 2, 1)  # B=2, 1 clip + 2 images
    ctx = np.asarray(conditioning.frame_context(captions, num_video_frames=4))
    assert ctx.shape == (2, 6, 2, 1)
    for f in range(4):
        np.testing.assert_array_equal(ctx[:, f], captions[:, 0])
    np.testing.assert_array_equal(ctx[:, 4:], captions[:, 1:])
    assert conditioning.frame_context(captions[:, :1], 4).shape == (2, 2, 1)


def test_ema_follows_the_polyak_recurrence():
    ema = {"w": jnp.zeros(3)}
    history = [np.full(3, v, np.float32) for v in (1.0, 2.0, 4.0)]
    expected = np.zeros(3)
    for p in history:
        ema = train_state.ema_update(ema, {"w": jnp.asarray(p)}, 0.9)
        expected = 0.9 * expected + 0.1 * p
    np.testing.assert_allclose(ema["w"], expected, rtol=1e-6)


def test_accumulation_equals_one_update_on_the_mean_gradient():
    params = {"w": jnp.array([1.0, -2.0, 3.0])}
    grads = [{"w": jnp.array([0.5, 1.0, -1.0])}, {"w": jnp.array([1.5, -3.0, 2.0])}]
    kwargs = dict(weight_decay=0.01, b1=0.9, b2=0.999, eps=1e-8, clip_norm=1.0)
    acc = optimizer.make_optimizer(1e-2, accumulate_steps=2, **kwargs)
    state, p = acc.init(params), params
    for i, g in enumerate(grads):
        updates, state = acc.update(g, state, p)
        p = optax.apply_updates(p, updates)
        assert bool(optimizer.applied_update(state)) == (i == 1)
        if i == 0:
            np.testing.assert_array_equal(p["w"], params["w"])  # nothing moves mid-accumulation
    one = optimizer.make_optimizer(1e-2, accumulate_steps=1, **kwargs)
    mean = jax.tree.map(lambda a, b: (a + b) / 2, *grads)
    updates, _ = one.update(mean, one.init(params), params)
    np.testing.assert_allclose(p["w"], optax.apply_updates(params, updates)["w"], rtol=1e-6)


def test_learning_rate_warmup_then_cosine():
    schedule = optimizer.learning_rate_schedule(1.0, warmup_steps=10, schedule="cosine", total_steps=110)
    assert float(schedule(0)) == 0.0 and abs(float(schedule(5)) - 0.5) < 1e-6
    assert abs(float(schedule(10)) - 1.0) < 1e-6 and abs(float(schedule(60)) - 0.5) < 1e-6
    assert float(schedule(110)) < 1e-6
    with pytest.raises(ValueError, match="schedule='linear'"):
        optimizer.learning_rate_schedule(1.0, warmup_steps=0, schedule="linear", total_steps=1)


def test_trainable_selection_temporal_preset():
    params = {
        "conv_in": {"kernel": jnp.zeros((3, 3, 4, 8))},
        "down_blocks": {0: {"attentions": {0: {"transformer_blocks": {0: {
            "attn_temp": {"to_q": {"kernel": jnp.zeros((8, 8))}},
            "attn1": {"to_q": {"kernel": jnp.zeros((8, 8))}},
            "norm_temp": {"scale": jnp.zeros(8)},
        }}}}}},
    }  # fmt: skip
    train, frozen = train_state.split_trainable(params, train_state.trainable_predicate("temporal"))
    names = {train_state.dotted(k) for k in traverse_util.flatten_dict(train)}
    assert names == {
        "down_blocks.0.attentions.0.transformer_blocks.0.attn_temp.to_q.kernel",
        "down_blocks.0.attentions.0.transformer_blocks.0.norm_temp.scale",
    }
    assert len(jax.tree.leaves(train)) == 2 and len(jax.tree.leaves(frozen)) == 2
    merged = train_state.merge_params(train, frozen)
    assert jax.tree.structure(merged) == jax.tree.structure(params)
    with pytest.raises(ValueError, match="selects no parameter"):
        train_state.check_trainable(
            params, train_state.trainable_predicate("nothing_matches"), "nothing_matches"
        )
    with pytest.raises(ValueError, match=r"trainable='\('"):
        train_state.trainable_predicate("(")


def test_crc32c_and_event_records_are_tensorboard_compatible():
    assert tensorboard.crc32c(b"123456789") == 0xE3069283  # the standard CRC-32C check value
    record = tensorboard.encode_record(b"abc")
    (length,) = struct.unpack("<Q", record[:8])
    assert length == 3 and record[12:15] == b"abc"


def test_metrics_writer_writes_jsonl_and_events(tmp_path):
    writer = metrics.MetricsWriter(tmp_path)
    writer.write(5, {"loss": 0.5, "grad_norm": float("nan")})
    writer.close()
    line = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert line == {"step": 5, "loss": 0.5, "grad_norm": "nan"}
    events = list((tmp_path / "tensorboard").iterdir())
    assert len(events) == 1 and events[0].read_bytes().count(b"loss") == 1


def test_checkpoint_after_cotangent_frees_activations_and_keeps_gradients():
    """An 8-block residual MLP: the compiled gradient's temporaries shrink (jax.checkpoint alone does
    not shrink them on XLA:CPU) and the gradients are bit-identical to the plain ones."""

    def block(p, x):
        return x + jnp.tanh(jax.nn.gelu(x @ p[0]) @ p[1])

    keys = jax.random.split(jax.random.key(0), 17)
    params = [
        (jax.random.normal(keys[2 * i], (64, 256)) * 0.1, jax.random.normal(keys[2 * i + 1], (256, 64)) * 0.1)
        for i in range(8)
    ]
    x = jax.random.normal(keys[16], (1024, 64))

    def loss(params, x, wrap):
        for p in params:
            x = wrap(block)(p, x)
        return jnp.sum(x**2)

    grads, temps = {}, {}
    for name, wrap in (("plain", lambda f: f), ("remat", remat.checkpoint_after_cotangent)):
        step = jax.jit(jax.grad(functools.partial(loss, wrap=wrap)))
        temps[name] = step.lower(params, x).compile().memory_analysis().temp_size_in_bytes
        grads[name] = step(params, x)
    assert temps["remat"] < 0.5 * temps["plain"], temps
    for a, b in zip(jax.tree.leaves(grads["plain"]), jax.tree.leaves(grads["remat"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
