"""Random-access sources of *records*: cheap dicts that say where an example's pixels are.

A source has ``len()``, ``[i] -> record`` and a ``name`` (grain `RandomAccessDataSource`); nothing
is decoded here — `loading` turns a record into frames inside the grain map, where failures are
caught and logged. Every record has

    kind     'video_file' | 'image_file' | 'encoded_frames' (| 'latents', see `latents.py`)
    source   the source's name;  index  its position in the source;  key  a stable id (relative path)
    caption  str, or None when missing (the loader skips it as ``missing_caption``)

plus ``path`` (files) or ``frames`` + ``fps`` (encoded frames from an ArrayRecord dataset).

`FolderSource` reads a folder of videos or images with captions from a CSV/JSONL table (WebVid
style: a path column — or a `path_template` over the row — and a caption column) or, with no table,
from sidecar ``<stem>.txt`` files next to each media file. `TfdsSource` reads an ArrayRecord
dataset written by `tfds_format.write_media` (``tools/build_dataset.py``) through tfds.
"""

from __future__ import annotations

import csv
import json
import os
import pathlib

from lavie_jax.data import tfds_format

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".m4v")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
MEDIA = ("video", "image")


def read_table(path: str | os.PathLike) -> list[dict]:
    """Rows of a ``.csv`` (header line) or ``.jsonl`` (one object per line) file."""
    path = pathlib.Path(path)
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    if path.suffix in (".jsonl", ".json"):
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    raise ValueError(f"captions={str(path)!r}; expected a .csv or .jsonl file")


class FolderSource:
    """Videos or images under `root`, captioned by a table or by sidecar ``.txt`` files.

    media:          'video' | 'image' (which loader the records go to).
    captions:       a .csv/.jsonl table; its paths are relative to `root`. None = sidecar mode: every
                    file under `root` with a media extension, caption from ``<same stem>.txt``.
    path_column:    the table column holding the relative path …
    path_template:  … or a format string over the row, e.g. WebVid's ``"{page_dir}/{videoid}.mp4"``.
    caption_column: e.g. ``caption``, or WebVid's ``name``.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        media: str,
        captions: str | os.PathLike | None = None,
        path_column: str = "path",
        caption_column: str = "caption",
        path_template: str | None = None,
        name: str | None = None,
    ):
        if media not in MEDIA:
            raise ValueError(f"FolderSource: media={media!r}; expected one of {MEDIA}")
        self.root = pathlib.Path(root).absolute()
        if not self.root.is_dir():
            raise ValueError(f"FolderSource: root={str(root)!r} is not a directory")
        self.media = media
        self.name = name or f"{self.root.name}/{media}s"
        if captions is None:
            self._items = self._scan_sidecars()
        else:
            self._items = self._from_table(pathlib.Path(captions), path_column, caption_column, path_template)

    def _from_table(self, table: pathlib.Path, path_column, caption_column, path_template):
        rows = read_table(table)
        if rows:
            needed = [caption_column] + ([] if path_template else [path_column])
            missing = [c for c in needed if c not in rows[0]]
            if missing:
                raise ValueError(
                    f"FolderSource: {str(table)!r} has no column(s) {missing}; "
                    f"its columns are {sorted(rows[0])}"
                )
        items = []
        for row in rows:
            rel = path_template.format(**row) if path_template else str(row[path_column])
            items.append((rel, row.get(caption_column)))
        return items

    def _scan_sidecars(self):
        extensions = VIDEO_EXTENSIONS if self.media == "video" else IMAGE_EXTENSIONS
        files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in extensions and p.is_file())
        items = []
        for p in files:
            txt = p.with_suffix(".txt")
            caption = txt.read_text(encoding="utf-8") if txt.is_file() else None
            items.append((str(p.relative_to(self.root)), caption))
        return items

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> dict:
        rel, caption = self._items[index]
        return {
            "kind": f"{self.media}_file",
            "source": self.name,
            "index": int(index),
            "key": rel,
            "caption": caption,
            "path": str(self.root / rel),
        }

    def __repr__(self) -> str:
        return f"FolderSource({str(self.root)!r}, media={self.media!r}, {len(self)} items)"


def synthetic_sources(root: str | os.PathLike) -> tuple[FolderSource, FolderSource]:
    """The (videos, images) sources of a folder written by `synthetic.write_dataset`."""
    root = pathlib.Path(root)
    return (
        FolderSource(root, media="video", captions=root / "videos.csv", name="synthetic/videos"),
        FolderSource(root, media="image", captions=root / "images.jsonl", name="synthetic/images"),
    )


class TfdsSource:
    """An ArrayRecord media dataset (``tools/build_dataset.py``) read with tfds's data source."""

    def __init__(self, path: str | os.PathLike, *, split: str = "train", name: str | None = None):
        self._data = tfds_format.open_split(path, tfds_format.MEDIA_BUILDER, split)
        self.name = name or f"tfds:{pathlib.Path(path).name}"

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, index: int) -> dict:
        example = self._data[index]
        caption = example["caption"]
        return {
            "kind": "encoded_frames",
            "source": self.name,
            "index": int(index),
            "key": tfds_format.text(example["key"]),
            "caption": tfds_format.text(caption) if caption else None,
            "frames": example["frames"],  # list of JPEG bytes, or a uint8 (N, H, W, 3) array
            "fps": float(example["fps"]),
        }

    def __repr__(self) -> str:
        return f"TfdsSource({self.name!r}, {len(self)} items)"
