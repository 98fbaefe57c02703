"""The grain pipeline: mixing weights, determinism, checkpointed iterator state, per-host sharding,
joint examples (images from an image set or from other videos), the trainer-facing iterator."""

import collections
import csv

import numpy as np
import pytest

from lavie_jax.data import frame_sampling, pipeline, skipping, sources, synthetic

SPEC = pipeline.ExampleSpec(height=16, width=16, num_images=1)
SAMPLING = frame_sampling.FrameSampling(3, stride=2)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return synthetic.write_dataset(
        tmp_path_factory.mktemp("synth"), videos=8, images=5, num_frames=12, height=16, width=16, seed=1
    )


def named(synth, name):
    return sources.FolderSource(synth, media="video", captions=synth / "videos.csv", name=name)


def dataset(synth, **kw):
    videos, images = sources.synthetic_sources(synth)
    kw.setdefault("images", [images])
    kw.setdefault("spec", SPEC)
    return pipeline.joint_dataset([videos], sampling=SAMPLING, shard_index=0, shard_count=1, **kw)


def take(iterator, n):
    return [next(iterator) for _ in range(n)]


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert sorted(x) == sorted(y)
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])


class Records:
    """A record-only source (grain's index shuffle is slow on tiny sources; this one has 10⁴ items)."""

    def __init__(self, name):
        self.name = name

    def __len__(self):
        return 10_000

    def __getitem__(self, i):
        return {"source": self.name, "index": i}


def test_mixing_weights_are_respected(synth):
    weights = [0.6, 0.3, 0.1]
    records = pipeline.record_stream([Records("a"), Records("b"), Records("c")], weights, seed=0)
    counts = collections.Counter(records[i]["source"] for i in range(3000))
    for name, w in zip("abc", weights):
        assert abs(counts[name] / 3000 - w) < 0.02, counts
    # through decoding and batching too
    a, b = named(synth, "a"), named(synth, "b")
    ds = pipeline.joint_dataset(
        [a, b], video_weights=[3, 1], sampling=SAMPLING, spec=SPEC, shard_index=0, shard_count=1
    )
    batches = take(iter(pipeline.batches(ds, 8)), 20)
    share = np.mean(np.concatenate([x["source"] for x in batches]) == "a")
    assert abs(share - 0.75) < 0.06, share
    with pytest.raises(ValueError, match="weights="):
        pipeline.record_stream([a, b], [1.0], seed=0)


def test_same_seed_same_batches_other_seed_other_batches(synth):
    first = take(iter(pipeline.batches(dataset(synth, seed=7), 2)), 3)
    again = take(iter(pipeline.batches(dataset(synth, seed=7), 2)), 3)
    assert_same_batches(first, again)
    other = take(iter(pipeline.batches(dataset(synth, seed=8), 2)), 3)
    assert any(not np.array_equal(x["video"], y["video"]) for x, y in zip(first, other))


def test_iterator_state_restores_the_next_batches(synth, tmp_path):
    # a table with two bad rows between the good ones: restoring must also replay the skipping
    rows = list(csv.DictReader(open(synth / "videos.csv")))
    (synth / "empty.mp4").write_bytes(b"")
    rows.insert(2, {**rows[0], "path": "empty.mp4"})
    rows.insert(5, {**rows[1], "path": "no_such_file.mp4"})
    with open(tmp_path / "table.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    videos = sources.FolderSource(synth, media="video", captions=tmp_path / "table.csv")
    ds = pipeline.joint_dataset(
        [videos],
        sampling=SAMPLING,
        spec=SPEC,
        seed=3,
        shard_index=0,
        shard_count=1,
        loader_options=dict(guard=skipping.BadFractionGuard(0.5)),
    )
    iterator = iter(pipeline.batches(ds, 3))
    take(iterator, 4)  # past the first epoch of 8 good clips: the state is mid-second-epoch
    state = iterator.get_state()
    expected = take(iterator, 3)
    restored = iter(pipeline.batches(ds, 3))
    restored.set_state(state)
    assert_same_batches(take(restored, 3), expected)


def test_two_hosts_see_disjoint_examples_covering_the_set(synth):
    keys = []
    for host in range(2):
        ds = pipeline.joint_dataset(
            [sources.synthetic_sources(synth)[0]],
            sampling=SAMPLING,
            spec=pipeline.ExampleSpec(height=16, width=16),
            shard_index=host,
            shard_count=2,
            num_epochs=1,
        )
        keys.append([str(k) for b in pipeline.batches(ds, 1) for k in b["key"]])
    assert len(keys[0]) == len(keys[1]) == 4
    assert not set(keys[0]) & set(keys[1])
    assert sorted(keys[0] + keys[1]) == [f"videos/{i:06d}.mp4" for i in range(8)]
    with pytest.raises(ValueError, match="shard_index=2"):
        pipeline.host_shard(2, 2)


def test_images_from_the_image_set_or_from_other_videos(synth):
    videos, images = sources.synthetic_sources(synth)
    image_captions = {images[i]["caption"] for i in range(len(images))}
    video_captions = {videos[i]["caption"] for i in range(len(videos))}
    spec = pipeline.ExampleSpec(height=16, width=16, num_images=2)
    with_images = take(iter(pipeline.batches(dataset(synth, spec=spec), 4)), 3)
    assert {c for b in with_images for c in b["captions"][:, 1:].ravel()} <= image_captions
    from_videos = take(iter(pipeline.batches(dataset(synth, spec=spec, images=[]), 4)), 3)
    assert {c for b in from_videos for c in b["captions"][:, 1:].ravel()} <= video_captions
    assert from_videos[0]["images"].shape == (4, 2, 16, 16, 3)
    # and such an image is a frame of the captioned video
    b = from_videos[0]
    for j in range(2):
        caption = b["captions"][0, 1 + j]
        frames = [
            f for i in range(len(videos)) if videos[i]["caption"] == caption for f in decoded(videos[i])
        ]
        image = np.round((b["images"][0, j] + 1) * 127.5)
        assert min(np.abs(frame - image).max() for frame in frames) == 0


def decoded(record):
    import av

    with av.open(record["path"]) as c:
        return [f.to_ndarray(format="rgb24").astype(np.float64) for f in c.decode(c.streams.video[0])]


def test_make_train_iterator_on_the_synthetic_folder(synth, tmp_path):
    iterator = pipeline.make_train_iterator(
        batch_size=2,
        num_frames=4,
        height=16,
        width=16,
        num_images=2,
        path=str(synth),
        source="synthetic",
        image_path=str(synth),
        frame_stride=2,
        seed=0,
        workdir=tmp_path,
        shard_index=0,
        shard_count=1,
    )
    batch = next(iterator)
    assert batch["video"].shape == (2, 4, 16, 16, 3) and batch["images"].shape == (2, 2, 16, 16, 3)
    assert batch["captions"].shape == (2, 3)
    assert isinstance(iterator.get_state(), dict)
    with pytest.raises(ValueError, match="data path is empty"):
        pipeline.open_sources("synthetic", "")
    with pytest.raises(ValueError, match="does not exist"):
        pipeline.make_train_iterator(
            batch_size=1,
            num_frames=4,
            height=16,
            width=16,
            num_images=0,
            path=str(tmp_path / "nope"),
            source="synthetic",
        )
