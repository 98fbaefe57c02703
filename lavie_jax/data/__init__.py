"""Data for training: sources of captioned videos/images, decoding, transforms, joint grain pipelines.

sources          folder (CSV/JSONL/sidecar captions) and ArrayRecord (tfds) record sources
tfds_format      the ArrayRecord builders (media, latents) — tensorflow-datasets without TensorFlow
frame_sampling   which frames make a clip (stride / fps, random start, short clips)
video_decode     PyAV: seek and decode only the frames needed
transforms       resize to cover, crop, flip, [-1, 1], area downsampling
loading          record → uint8 frames
samples          per-stage example dicts (base / interpolation / vsr)
skipping         bad-example reasons, skipped.jsonl, the bad-fraction guard
pipeline         grain: shard, shuffle, mix, join clips with images, batch, workers
latents          precomputed VAE/text-encoder outputs: writing and reading
synthetic        the captioned synthetic set (coloured shapes moving)
"""
