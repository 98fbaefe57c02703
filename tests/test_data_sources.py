"""Synthetic set, folder sources, frame sampling, transforms and the per-stage examples.

References are computed here independently: a full decode of each file (every frame, in order)
for the seeking decoder, numpy block means for the ×4 area downsampling, pixel statistics of the
rendered shapes for the captions.
"""

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from lavie_jax.data import (
    frame_sampling,
    loading,
    pipeline,
    samples,
    skipping,
    sources,
    synthetic,
    transforms,
    video_decode,
)

FRAMES, H, W = 24, 32, 48


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return synthetic.write_dataset(
        tmp_path_factory.mktemp("synth"), videos=6, images=4, num_frames=FRAMES, height=H, width=W, seed=3
    )


def full_decode(path):
    """Every frame by decoding sequentially from the start with PyAV (no seeking)."""
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])


def test_synthetic_is_deterministic_and_captions_match_pixels(synth, tmp_path):
    again = synthetic.write_dataset(
        tmp_path, videos=6, images=4, num_frames=FRAMES, height=H, width=W, seed=3
    )
    assert (again / "videos.csv").read_text() == (synth / "videos.csv").read_text()
    assert (again / "images.jsonl").read_text() == (synth / "images.jsonl").read_text()
    for name in ("videos/000000.mp4", "images/000003.png"):
        assert (again / name).read_bytes() == (synth / name).read_bytes()
    other = synthetic.write_dataset(
        tmp_path / "b", videos=6, images=0, num_frames=FRAMES, height=H, width=W, seed=4
    )
    assert (other / "videos.csv").read_text() != (synth / "videos.csv").read_text()

    rows = list(csv.DictReader(open(synth / "videos.csv")))
    assert len(rows) == 6 and set(rows[0]) == set(synthetic.VIDEO_COLUMNS)
    background = np.array(synthetic.BACKGROUND)
    for row in rows:
        assert row["caption"] == f"a {row['color']} {row['shape']} moving {row['direction']}, {row['speed']}"
        frames = full_decode(synth / row["path"]).astype(np.float64)  # (F, H, W, 3)
        assert frames.shape == (FRAMES, H, W, 3)
        mask = np.abs(frames - background).sum(-1) > 120  # (F, H, W): the shape's pixels
        colour = frames[mask].mean(0)
        nearest = min(synthetic.COLORS, key=lambda c: np.abs(np.array(synthetic.COLORS[c]) - colour).sum())
        assert nearest == row["color"]
        rows_idx, cols_idx = np.indices((H, W))
        centroid = np.array([[rows_idx[m].mean(), cols_idx[m].mean()] for m in mask])  # (F, 2)
        moved = centroid[-1] - centroid[0]
        dy, dx = synthetic.DIRECTIONS[row["direction"]]
        along = moved @ np.array([dy, dx])
        extent = H if dy else W
        assert along > 0.5 * synthetic.SPEEDS[row["speed"]] * extent
        assert abs(moved @ np.array([dx, dy])) < 1.5  # no motion across the direction
    for line in open(synth / "images.jsonl"):
        item = json.loads(line)
        assert item["caption"] == f"a {item['color']} {item['shape']}"
        assert np.asarray(Image.open(synth / item["path"])).shape == (H, W, 3)


def test_synthetic_clips_are_lossless(synth):
    """The decoded clip is the rendered one after the 4:2:0 conversion alone (the encoder is
    lossless, so no encoder decision — which once differed between processes — reaches the data)."""
    import av

    for i, row in enumerate(csv.DictReader(open(synth / "videos.csv"))):
        rng = synthetic.item_rng(3, synthetic._VIDEO, i)
        spec = synthetic.random_spec(rng, moving=True)
        assert spec.caption() == row["caption"]
        rendered = synthetic.render_clip(spec, rng, FRAMES, H, W)
        through_420 = np.stack(
            [
                av.VideoFrame.from_ndarray(f, format="rgb24")
                .reformat(format="yuv420p")
                .to_ndarray(format="rgb24")
                for f in rendered
            ]
        )
        np.testing.assert_array_equal(full_decode(synth / row["path"]), through_420)


def test_video_folder_source_and_seeking_decode(synth):
    videos, _ = sources.synthetic_sources(synth)
    assert len(videos) == 6
    rows = list(csv.DictReader(open(synth / "videos.csv")))
    sampling = frame_sampling.FrameSampling(num_frames=5, stride=3)
    for i in range(len(videos)):
        record = videos[i]
        assert record["caption"] == rows[i]["caption"] and record["key"] == rows[i]["path"]
        reference = full_decode(record["path"])
        for seed in range(3):
            indices = sampling.indices(FRAMES, 8.0, np.random.default_rng(seed))
            assert len(indices) == 5 and np.all(np.diff(indices) == 3)
            clip = video_decode.decode_clip(record["path"], sampling, np.random.default_rng(seed))
            np.testing.assert_array_equal(clip, reference[indices])
    info = video_decode.probe(videos[0]["path"])
    assert (info.num_frames, info.fps, info.height, info.width) == (FRAMES, 8.0, H, W)


def test_frame_sampling_rules():
    rng = np.random.default_rng(0)
    starts = {int(frame_sampling.FrameSampling(4, stride=2).indices(20, 8.0, rng)[0]) for _ in range(200)}
    assert starts == set(range(0, 20 - 7 + 1))  # every start that fits, and only those
    centred = frame_sampling.FrameSampling(4, stride=2, random_start=False).indices(20, 8.0, rng)
    np.testing.assert_array_equal(centred, [6, 8, 10, 12])
    by_fps = frame_sampling.FrameSampling(5, fps=3.0, random_start=False).indices(13, 8.0, rng)
    np.testing.assert_array_equal(by_fps - by_fps[0], np.floor(np.arange(5) * 8 / 3 + 0.5))
    with pytest.raises(skipping.BadExample, match="too_short"):
        frame_sampling.FrameSampling(6, stride=2).indices(5, 8.0, rng)
    np.testing.assert_array_equal(
        frame_sampling.FrameSampling(6, stride=2, short="loop").indices(5, 8, rng), [0, 2, 4, 1, 3, 0]
    )
    np.testing.assert_array_equal(
        frame_sampling.FrameSampling(6, stride=2, short="pad").indices(5, 8, rng), [0, 2, 4, 4, 4, 4]
    )
    with pytest.raises(ValueError, match="short="):
        frame_sampling.FrameSampling(4, short="wrap")
    with pytest.raises(ValueError, match="stride=0"):
        frame_sampling.FrameSampling(4, stride=0)


def test_image_sources_table_and_sidecars(synth, tmp_path):
    _, images = sources.synthetic_sources(synth)
    assert len(images) == 4
    record = images[2]
    expected = np.asarray(Image.open(record["path"]).convert("RGB"))
    np.testing.assert_array_equal(loading.load_still(record, np.random.default_rng(0), (H, W)), expected)
    # LAION-style folder: image + <stem>.txt, no table; one image lacks its caption file
    for i in range(4):
        shutil.copy(synth / f"images/{i:06d}.png", tmp_path / f"{i}.png")
        if i != 1:
            (tmp_path / f"{i}.txt").write_text(f"caption {i}\n")
    sidecar = sources.FolderSource(tmp_path, media="image")
    assert [sidecar[i]["key"] for i in range(4)] == ["0.png", "1.png", "2.png", "3.png"]
    assert sidecar[1]["caption"] is None and sidecar[3]["caption"] == "caption 3\n"
    with pytest.raises(skipping.BadExample, match="missing_caption"):
        skipping.check_caption(sidecar[1]["caption"])
    # a video folder with sidecar captions reads the same clips
    videos = sources.FolderSource(synth / "videos", media="video")
    assert len(videos) == 6 and videos[0]["caption"] is None
    with pytest.raises(ValueError, match="no column"):
        sources.FolderSource(synth, media="video", captions=synth / "videos.csv", caption_column="name")


@pytest.mark.parametrize(
    "stage,frames,height,width", [("base", 4, 24, 40), ("interpolation", 9, 32, 32), ("vsr", 4, 24, 40)]
)
def test_stage_examples_shapes_and_range(synth, stage, frames, height, width):
    videos, images = sources.synthetic_sources(synth)
    spec = pipeline.ExampleSpec(stage=stage, height=height, width=width, num_images=2, flip=True)
    ds = pipeline.joint_dataset(
        [videos],
        images=[images],
        sampling=frame_sampling.FrameSampling(frames, stride=2),
        spec=spec,
        shard_index=0,
        shard_count=1,
        loader_options=dict(tokenize=lambda caps: np.array([[len(c)] * 77 for c in caps])),
    )
    batch = next(iter(pipeline.batches(ds, 2)))
    assert batch["video"].shape == (2, frames, height, width, 3) and batch["video"].dtype == np.float32
    assert batch["images"].shape == (2, 2, height, width, 3)
    for key in ("video", "images"):
        assert batch[key].min() >= -1.0 and batch[key].max() <= 1.0
    assert batch["captions"].shape == (2, 3)
    assert batch["caption_ids"].shape == (2, 3, 77) and batch["caption_ids"].dtype == np.int32
    assert batch["caption_ids"][1, 2, 0] == len(batch["captions"][1, 2])
    assert all(c.startswith("a ") and "moving" in c for c in batch["captions"][:, 0])
    assert not any("moving" in c for c in batch["captions"][:, 1:].ravel())
    if stage == "vsr":
        blocks = batch["video"].reshape(2, frames, height // 4, 4, width // 4, 4, 3)
        np.testing.assert_allclose(batch["low_res"], blocks.mean(axis=(3, 5)), atol=1e-6)
    else:
        assert "low_res" not in batch


def test_crop_takes_a_window_of_the_decoded_frames(synth):
    videos, _ = sources.synthetic_sources(synth)
    record = videos[1]
    sampling = frame_sampling.FrameSampling(3, stride=4)
    clip = loading.load_clip(record, sampling, np.random.default_rng(5), (H, W))  # native size: no resize
    reference = full_decode(record["path"])[sampling.indices(FRAMES, 8.0, np.random.default_rng(5))]
    np.testing.assert_array_equal(clip, reference)
    example = samples.make_example(
        clip, [], ["c"], np.random.default_rng(1), stage="base", height=32, width=30, random_crop=True
    )
    video = example["video"]  # (3, 32, 30, 3) in [-1, 1]; the 32×48 frames already just cover it: a crop
    as_uint8 = np.round((video + 1.0) * 127.5).astype(np.uint8)
    hits = [
        (top, left)
        for top in range(H - 32 + 1)
        for left in range(W - 30 + 1)
        if np.array_equal(reference[:, top : top + 32, left : left + 30], as_uint8)
    ]
    assert len(hits) >= 1
    assert transforms.cover_size(336, 596, 320, 512) == (320, 568)  # WebVid size → base stage
    assert transforms.cover_size(32, 48, 64, 64) == (64, 96)
    with pytest.raises(ValueError, match="4k\\+1"):
        samples.check_stage("interpolation", 16, 32, 32)
    with pytest.raises(ValueError, match="multiples of 4"):
        samples.check_stage("vsr", 16, 30, 32)
