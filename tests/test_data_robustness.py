"""A folder salted with broken files and captions: only good examples come out, each reason is
counted once per bad file, ``skipped.jsonl`` lists them, and a mostly-bad source stops with an
error that names examples instead of looping forever."""

import csv
import json

import numpy as np
import pytest

from lavie_jax.data import frame_sampling, pipeline, skipping, sources, synthetic

SAMPLING = frame_sampling.FrameSampling(4, stride=2)  # spans 7 frames
SPEC = pipeline.ExampleSpec(height=16, width=16)
GOOD = 5


@pytest.fixture(scope="module")
def salted(tmp_path_factory):
    root = synthetic.write_dataset(
        tmp_path_factory.mktemp("salted"), videos=GOOD + 2, images=4, num_frames=16, height=16, width=16
    )
    rows = list(csv.DictReader(open(root / "videos.csv")))
    good, spare = rows[:GOOD], rows[GOOD:]
    rng = np.random.default_rng(0)
    (root / "corrupt.mp4").write_bytes(rng.bytes(4000))
    (root / "empty.mp4").write_bytes(b"")
    data = (root / spare[0]["path"]).read_bytes()
    (root / "truncated.mp4").write_bytes(data[: int(len(data) * 0.35)])  # index kept, frames cut off
    synthetic.write_mp4(root / "short.mp4", np.zeros((5, 16, 16, 3), np.uint8), fps=8)
    bad = [
        {**spare[0], "path": "corrupt.mp4"},
        {**spare[0], "path": "empty.mp4"},
        {**spare[0], "path": "truncated.mp4"},
        {**spare[0], "path": "short.mp4"},
        {**spare[0], "path": "missing.mp4"},
        {**spare[1], "caption": "  "},
    ]
    expected = {
        "corrupt": 1,
        "empty": 1,
        "truncated": 1,
        "too_short": 1,
        "missing_file": 1,
        "missing_caption": 1,
    }
    table = good[:2] + bad[:3] + good[2:] + bad[3:]
    with open(root / "salted.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(table)
    # images: 4 good, one undecodable file, one without a caption
    (root / "images" / "broken.png").write_bytes(rng.bytes(300))
    lines = (root / "images.jsonl").read_text().splitlines()
    lines.insert(1, json.dumps({"path": "images/broken.png", "caption": "a red square"}))
    lines.insert(3, json.dumps({"path": "images/000000.png", "caption": ""}))
    (root / "salted_images.jsonl").write_text("\n".join(lines) + "\n")
    return root, {r["path"] for r in good}, expected


def test_only_good_examples_and_each_reason_counted(salted, tmp_path):
    root, good_paths, expected = salted
    videos = sources.FolderSource(root, media="video", captions=root / "salted.csv")
    log = skipping.SkipLog(tmp_path)
    ds = pipeline.joint_dataset(
        [videos],
        sampling=SAMPLING,
        spec=SPEC,
        shard_index=0,
        shard_count=1,
        num_epochs=2,
        loader_options=dict(skip_log=log, guard=skipping.BadFractionGuard(0.6)),
    )
    keys = [str(k) for batch in pipeline.batches(ds, 1) for k in batch["key"]]
    assert sorted(keys) == sorted(list(good_paths) * 2)  # two epochs of the good clips, nothing else
    assert log.counts() == expected  # once per bad file, although seen in both epochs
    entries = [json.loads(line) for line in (tmp_path / "skipped.jsonl").read_text().splitlines()]
    assert len(entries) == len(expected)
    by_reason = {e["reason"]: e for e in entries}
    assert by_reason["truncated"]["path"].endswith("truncated.mp4")
    assert by_reason["corrupt"]["path"].endswith("corrupt.mp4")
    assert by_reason["missing_caption"]["key"] not in {"corrupt.mp4", "empty.mp4"}


def test_bad_images_are_skipped_and_batches_keep_coming(salted, tmp_path):
    root, good_paths, _ = salted
    videos = sources.FolderSource(root, media="video", captions=root / "salted.csv")
    images = sources.FolderSource(root, media="image", captions=root / "salted_images.jsonl")
    log = skipping.SkipLog(tmp_path)
    ds = pipeline.joint_dataset(
        [videos],
        images=[images],
        sampling=SAMPLING,
        spec=pipeline.ExampleSpec(height=16, width=16, num_images=2),
        shard_index=0,
        shard_count=1,
        seed=5,
        loader_options=dict(skip_log=log, guard=skipping.BadFractionGuard(0.6)),
    )
    iterator = iter(pipeline.batches(ds, 4))
    batches = [next(iterator) for _ in range(6)]
    for b in batches:
        assert set(map(str, b["key"])) <= good_paths
        assert all(c.strip() for c in b["captions"].ravel())
    image_entries = [e for e in log.entries() if e["source"] == images.name]
    assert sorted(e["reason"] for e in image_entries) == ["corrupt", "missing_caption"]


def test_mostly_bad_source_stops_with_a_named_error(salted, tmp_path):
    root, _, _ = salted
    rows = list(csv.DictReader(open(root / "salted.csv")))
    bad_rows = [r for r in rows if r["path"] in ("corrupt.mp4", "empty.mp4", "missing.mp4")]
    with open(tmp_path / "bad.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(bad_rows * 3 + rows[:1])  # 9 bad, 1 good
    videos = sources.FolderSource(root, media="video", captions=tmp_path / "bad.csv", name="mostly-bad")
    ds = pipeline.joint_dataset(
        [videos],
        sampling=SAMPLING,
        spec=SPEC,
        shard_index=0,
        shard_count=1,
        loader_options=dict(guard=skipping.BadFractionGuard(0.5, min_attempts=8)),
    )
    with pytest.raises(
        skipping.TooManyBadExamples, match=r"mostly-bad.*max_bad_fraction=0.5.*(corrupt|empty|missing)\.mp4"
    ):
        next(iter(pipeline.batches(ds, 2)))
    with pytest.raises(ValueError, match="max_bad_fraction"):
        skipping.BadFractionGuard(1.5)
