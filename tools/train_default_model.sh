#!/usr/bin/env bash
# Rebuild the shipped default model (lavie_jax/assets/default_model) from scratch on this machine:
# synthetic data → VAE → base, interpolation and VSR UNets → EMA exports (bfloat16) → package data.
#
#   tools/train_default_model.sh [WORK_DIR]        (default: runs/default_model; resumable: rerun it)
#
# Each `python -m lavie_jax.train` resumes from its last checkpoint, so an interrupted build continues
# where it stopped. The VAE is trained on 32×32 frames, then fine-tuned on 128×128 ones for the VSR
# stage (stages exchange pixels, so each may have its own VAE); the frozen text encoder is the random
# one every default config builds from seed 0.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="${1:-runs/default_model}"
OUT="$WORK/export"
PY="${PYTHON:-python}"
mkdir -p "$WORK" "$OUT"

train() { "$PY" -m lavie_jax.train --config "configs/$1.py" --workdir "$WORK/$2" "${@:3}"; }
export_run() { [ -e "$2" ] || "$PY" tools/export_model.py --workdir "$WORK/$1" --out "$2" "${@:3}"; }

DATA32="--config.data.path=$WORK/data_32"
DATA128="--config.data.path=$WORK/data_128"

# 1. The autoencoder: 32×32 (base and interpolation), then fine-tuned on 128×128 frames (VSR).
train default_vae vae_32 "$DATA32"
export_run vae_32 "$OUT/vae_32/vae"
train default_vae vae_128 "$DATA128" --config.init_from="$OUT/vae_32" \
    --config.data.height=128 --config.data.width=128 --config.batch_size=2 --config.num_steps=150
export_run vae_128 "$OUT/vae_128/vae"

# 2. The three UNets on a frozen VAE and the (random, frozen) text encoder. The base stage takes two
#    runs: the 1,024 clips above, then (configs/default_base_continued.py) 8,192 clips and images
#    encoded once with the first run's encoders.
train default_base base "$DATA32" --config.encoders_from="$OUT/vae_32"
export_run base "$OUT/base_1" --dtype bfloat16 --steps 50
if [ ! -e "$WORK/data_32_8k" ]; then  # written aside, then moved: an interrupted write starts over
    rm -rf "$WORK/data_32_8k.part"
    "$PY" tools/make_synthetic_data.py --out "$WORK/data_32_8k.part" --videos 8192 --images 8192 \
        --frames 61 --height 32 --width 32
    mv "$WORK/data_32_8k.part" "$WORK/data_32_8k"
fi
latents() {  # MEDIA FRAMES STRIDE; tfds renames the finished dataset into place, so it marks completion
    [ -e "$WORK/latents_$1/lavie_latents/float32/1.0.0" ] || "$PY" tools/precompute_latents.py \
        --model "$OUT/base_1" --src "$WORK/data_32_8k" --kind synthetic --media "$1" \
        --out "$WORK/latents_$1" --frames "$2" --stride "$3" --height 32 --width 32 --frame-batch 64
}
latents video 16 4
latents image 1 1
train default_base_continued base_2 --config.init_from="$OUT/base_1" \
    --config.data.path="$WORK/latents_video" --config.data.image_path="$WORK/latents_image"
train default_interpolation interpolation "$DATA32" --config.encoders_from="$OUT/vae_32"
train default_vsr vsr "$DATA128" --config.encoders_from="$OUT/vae_128"
# Sampling defaults of the shipped folders: fewer steps than LaVie's 50 (a small model on small frames).
export_run base_2 "$OUT/model/base" --dtype bfloat16 --steps 50
# Trained with captions as they are and '' for dropped ones: no ", 4k." suffix, no "None" / "blur, …"
# negative prompts.
export_run interpolation "$OUT/model/interpolation" --dtype bfloat16 --steps 25 --negative-prompt "" \
    --prompt-suffix ""
export_run vsr "$OUT/model/vsr" --dtype bfloat16 --steps 10 --negative-prompt ""

# 3. Into the package.
rm -rf lavie_jax/assets/default_model
mkdir -p lavie_jax/assets
cp -r "$OUT/model" lavie_jax/assets/default_model
du -sh lavie_jax/assets/default_model
