"""ArrayRecord datasets via tensorflow-datasets (no TensorFlow): `tools/build_dataset.py` round trip,
and precomputed latents equal to the encoders run on the same inputs (test callables, and a tiny
real VAE + CLIP text encoder through `tools/precompute_latents.py`)."""

import csv
import importlib.util
import pathlib

import av
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from lavie_jax.data import (
    frame_sampling,
    latents,
    loading,
    pipeline,
    skipping,
    sources,
    synthetic,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
FRAMES, H, W = 12, 16, 24


def tool(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = synthetic.write_dataset(
        tmp_path_factory.mktemp("synth"), videos=4, images=3, num_frames=FRAMES, height=H, width=W, seed=2
    )
    rows = list(csv.DictReader(open(root / "videos.csv")))
    (root / "empty.mp4").write_bytes(b"")
    with open(root / "with_bad.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows + [{**rows[0], "path": "empty.mp4"}])
    return root


def full_decode(path):
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])


def test_build_dataset_round_trip(synth, tmp_path):
    build = tool("build_dataset")
    out = tmp_path / "raw"
    assert build.main(["--src", str(synth / "with_bad.csv"), "--out", str(out), "--frame-format", "raw"]) == 0
    data = tfds.data_source("lavie_media/raw", data_dir=str(out), split="train")
    rows = list(csv.DictReader(open(synth / "videos.csv")))
    assert len(data) == len(rows)  # the empty file was skipped …
    assert skipping.SkipLog(out).counts() == {"empty": 1}  # … and logged
    for row, example in zip(rows, data):
        assert example["key"].decode() == row["path"] and example["caption"].decode() == row["caption"]
        np.testing.assert_array_equal(example["frames"], full_decode(synth / row["path"]))
        assert example["fps"] == 8.0

    # JPEG frames: lossy but close; the TfdsSource feeds the same loader as the folder
    jpeg = tmp_path / "jpeg"
    assert build.main(["--src", str(synth / "videos.csv"), "--out", str(jpeg), "--jpeg-quality", "98"]) == 0
    source = sources.TfdsSource(jpeg)
    record = source[1]
    assert record["kind"] == "encoded_frames" and record["caption"] == rows[1]["caption"]
    sampling = frame_sampling.FrameSampling(4, stride=2)
    from_tfds = loading.load_clip(record, sampling, np.random.default_rng(0), (H, W)).astype(np.float64)
    folder = sources.synthetic_sources(synth)[0]
    from_file = loading.load_clip(folder[1], sampling, np.random.default_rng(0), (H, W)).astype(np.float64)
    assert from_tfds.shape == from_file.shape == (4, H, W, 3)
    assert np.abs(from_tfds - from_file).mean() < 3.0
    batch = next(
        iter(
            pipeline.batches(
                pipeline.joint_dataset(
                    [source],
                    sampling=sampling,
                    spec=pipeline.ExampleSpec(height=H, width=W, num_images=1),
                    shard_index=0,
                    shard_count=1,
                ),
                2,
            )
        )
    )
    assert batch["video"].shape == (2, 4, H, W, 3) and batch["images"].shape == (2, 1, H, W, 3)

    # images: one-frame items
    images = tmp_path / "images"
    assert (
        build.main(
            [
                "--src",
                str(synth / "images.jsonl"),
                "--media",
                "image",
                "--out",
                str(images),
                "--frame-format",
                "raw",
            ]
        )
        == 0
    )
    item = sources.TfdsSource(images)[2]
    np.testing.assert_array_equal(item["frames"][0], np.asarray(Image.open(synth / "images/000002.png")))
    with pytest.raises(ValueError, match="exists"):
        build.main(
            [
                "--src",
                str(synth / "images.jsonl"),
                "--media",
                "image",
                "--out",
                str(images),
                "--frame-format",
                "raw",
            ]
        )


def encode_fn(frames):
    """A deterministic stand-in for the VAE: 2×2 block means (+ a 4th channel) and a logvar."""
    f, h, w, _ = frames.shape
    blocks = frames.reshape(f, h // 2, 2, w // 2, 2, 3).mean(axis=(2, 4))  # (F, h/2, w/2, 3)
    mean = np.concatenate([blocks, blocks.sum(-1, keepdims=True)], -1)  # (F, h/2, w/2, 4)
    return mean, -20.0 - mean**2


def text_fn(captions):
    codes = np.zeros((len(captions), 77, 6), np.float32)
    for i, c in enumerate(captions):
        data = np.frombuffer(c.encode()[:77], np.uint8)
        codes[i, : len(data)] = data[:, None] / np.arange(1, 7)
    return codes


def test_precomputed_latents_equal_the_encoders(synth, tmp_path):
    videos, images = sources.synthetic_sources(synth)
    sampling = frame_sampling.FrameSampling(4, stride=2, random_start=False)
    items = lambda src: latents.clip_items(src, sampling=sampling, height=H, width=W)  # noqa: E731
    video_dir = latents.precompute_latents(items(videos), encode_fn, text_fn, tmp_path / "v")
    image_dir = latents.precompute_latents(items(images), encode_fn, text_fn, tmp_path / "i", dtype="float16")
    stored_videos, stored_images = latents.LatentSource(video_dir), latents.LatentSource(image_dir)
    assert stored_videos.num_frames == 4 and stored_images.num_frames == 1
    for source, stored, dtype_tol in ((videos, stored_videos, 0), (images, stored_images, 2e-3)):
        for i, item in enumerate(items(source)):
            record = stored[i]
            mean, logvar = encode_fn(item["frames"])
            assert record["key"] == item["key"] and record["caption"] == item["caption"]
            np.testing.assert_allclose(record["latent_mean"], mean, rtol=dtype_tol, atol=dtype_tol)
            np.testing.assert_allclose(record["latent_logvar"], logvar, rtol=dtype_tol, atol=dtype_tol)
            np.testing.assert_allclose(
                record["text_embedding"], text_fn([item["caption"]])[0], rtol=dtype_tol
            )

    # joint batches: clip latents then image latents, captions in the same order
    ds = pipeline.latent_dataset(
        [stored_videos], images=[stored_images], num_frames=4, num_images=2, shard_index=0, shard_count=1
    )
    batch = next(iter(pipeline.batches(ds, 3)))
    assert batch["latent_mean"].shape == (3, 6, H // 2, W // 2, 4)
    assert batch["text_embeddings"].shape == (3, 3, 77, 6)
    for b in range(3):
        for j in range(3):
            np.testing.assert_allclose(
                batch["text_embeddings"][b, j], text_fn([batch["captions"][b, j]])[0], rtol=2e-3
            )
    # sampled and scaled: with logvar ≤ −20 the sample is the mean up to exp(−10)
    sampled = pipeline.latent_dataset(
        [stored_videos], num_frames=4, scaling_factor=0.5, shard_index=0, shard_count=1
    )
    batch = next(iter(pipeline.batches(sampled, 2)))
    keys = [str(k) for k in batch["key"]]
    for b, key in enumerate(keys):
        index = next(i for i in range(len(stored_videos)) if stored_videos[i]["key"] == key)
        np.testing.assert_allclose(batch["latents"][b], 0.5 * stored_videos[index]["latent_mean"], atol=1e-3)
    with pytest.raises(ValueError, match="num_frames=8"):
        next(
            iter(
                pipeline.batches(
                    pipeline.latent_dataset([stored_videos], num_frames=8, shard_index=0, shard_count=1), 1
                )
            )
        )


def random_module(build):
    """The module built abstractly and filled with small normal weights (no per-initializer compiles)."""
    from flax import nnx

    from lavie_jax.convert import state

    module = nnx.eval_shape(build)
    rng = np.random.default_rng(0)
    shapes = {k: v.shape for k, v in state.flat_params(module).items()}
    state.assign(module, {k: rng.normal(0, 0.2, s).astype(np.float32) for k, s in shapes.items()})
    return module


def test_precompute_cli_with_real_tiny_encoders(synth, tmp_path):
    import jax.numpy as jnp
    from flax import nnx

    from lavie_jax.models import clip_text, tokenizer, vae

    model = tmp_path / "model"
    vae_model = random_module(
        lambda: vae.AutoencoderKL(
            vae.VAEConfig(block_out_channels=(8, 8), layers_per_block=1, norm_num_groups=4), rngs=nnx.Rngs(0)
        )
    )
    text_model = random_module(
        lambda: clip_text.CLIPTextModel(
            clip_text.CLIPTextConfig(
                hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
            ),
            rngs=nnx.Rngs(1),
        )
    )
    vae.save_vae(model / "vae", vae_model)
    clip_text.save_text_encoder(model / "text_encoder", text_model)
    tok = tokenizer.default_tokenizer()
    tok.save(model / "tokenizer")
    out = tmp_path / "latents"
    argv = [
        "--model",
        str(model),
        "--src",
        str(synth),
        "--kind",
        "synthetic",
        "--out",
        str(out),
        "--frames",
        "5",
        "--stride",
        "2",
        "--height",
        str(H),
        "--width",
        str(W),
        "--frame-batch",
        "2",
    ]
    assert tool("precompute_latents").main(argv) == 0
    stored = latents.LatentSource(out)
    sampling = frame_sampling.FrameSampling(5, stride=2, random_start=False)
    videos, _ = sources.synthetic_sources(synth)
    for i, item in enumerate(latents.clip_items(videos, sampling=sampling, height=H, width=W)):
        posterior = vae_model.encode(jnp.asarray(item["frames"]))  # (5, H/2, W/2, 4)
        hidden = text_model(jnp.asarray(tok([item["caption"]])))  # (1, 77, 16)
        np.testing.assert_allclose(stored[i]["latent_mean"], posterior.mean, atol=1e-4)
        np.testing.assert_allclose(stored[i]["latent_logvar"], posterior.logvar, atol=1e-4)
        np.testing.assert_allclose(stored[i]["text_embedding"], hidden[0], atol=1e-4)
    assert len(stored) == 4
