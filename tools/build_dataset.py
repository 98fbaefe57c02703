r"""Pack a folder of captioned videos (or images) into an ArrayRecord dataset with tensorflow-datasets.

    python tools/build_dataset.py --src data/synthetic/videos.csv --media video --out data/synthetic_tfds
    python tools/build_dataset.py --src webvid/results_2M_train.csv \
        --path-template "{page_dir}/{videoid}.mp4" --caption-column name \
        --root webvid/videos --media video --out data/webvid_tfds --max-short-side 360

`--src` is a caption table (.csv/.jsonl, paths relative to `--root`, default its folder) or a folder
with sidecar ``.txt`` captions. Every frame of every video is stored (``--frame-format jpeg``: one
JPEG per frame; ``raw``: lossless uint8, zlib), optionally shrunk so the short side is at most
``--max-short-side``; images are stored as one-frame clips. Unreadable files and missing captions
are skipped and listed in ``OUT/skipped.jsonl``. Read it back with
``lavie_jax.data.sources.TfdsSource(OUT)`` or ``tfds.data_source`` / ``tfds.builder_from_directory``.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Iterator

import numpy as np

from lavie_jax.data import loading, skipping, sources, tfds_format, transforms, video_decode


def media_items(
    source: sources.FolderSource, *, max_short_side: int, skip_log: skipping.SkipLog
) -> Iterator[dict]:
    """``{key, caption, fps, frames (N, H, W, 3) uint8}`` per good record, in source order."""
    for i in range(len(source)):
        record = source[i]
        try:
            caption = skipping.check_caption(record["caption"])
            if source.media == "video":
                frames, info = video_decode.read_all(record["path"])
                fps = info.fps
            else:
                frames = transforms.decode_image(loading.read_bytes(record["path"]))[None]
                fps = 0.0
        except skipping.BadExample as e:
            skip_log.record(
                source=source.name, key=record["key"], path=record["path"], reason=e.reason, detail=e.detail
            )
            continue
        h, w = frames.shape[1:3]
        if max_short_side and min(h, w) > max_short_side:
            frames = transforms.resize_cover(frames, max_short_side, max_short_side)
        yield {"key": record["key"], "caption": caption, "fps": fps, "frames": np.ascontiguousarray(frames)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--src", required=True, help="caption table (.csv/.jsonl) or a folder with .txt sidecars"
    )
    parser.add_argument(
        "--root", default=None, help="folder the table's paths are relative to (default: its folder)"
    )
    parser.add_argument("--media", choices=sources.MEDIA, default="video")
    parser.add_argument("--out", required=True, help="output data_dir")
    parser.add_argument("--frame-format", choices=tfds_format.FRAME_FORMATS, default="jpeg")
    parser.add_argument("--jpeg-quality", type=int, default=95)
    parser.add_argument(
        "--max-short-side", type=int, default=0, help="shrink larger frames to this short side (0 = keep)"
    )
    parser.add_argument("--path-column", default="path")
    parser.add_argument("--caption-column", default="caption")
    parser.add_argument("--path-template", default=None, help='e.g. "{page_dir}/{videoid}.mp4" (WebVid)')
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset of this format")
    args = parser.parse_args(argv)

    src = pathlib.Path(args.src)
    if src.is_file():
        source = sources.FolderSource(
            args.root or src.parent,
            media=args.media,
            captions=src,
            path_column=args.path_column,
            caption_column=args.caption_column,
            path_template=args.path_template,
        )
    else:
        source = sources.FolderSource(src, media=args.media)
    skip_log = skipping.SkipLog(args.out)
    items = media_items(source, max_short_side=args.max_short_side, skip_log=skip_log)
    folder = tfds_format.write_media(
        args.out,
        items,
        frame_format=args.frame_format,
        jpeg_quality=args.jpeg_quality,
        overwrite=args.overwrite,
    )
    written = len(tfds_format.open_split(folder, tfds_format.MEDIA_BUILDER))
    print(
        f"{written} of {len(source)} {args.media}s written to {folder}; "
        f"skipped: {skip_log.counts() or 'none'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
