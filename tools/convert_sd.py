"""Convert PyTorch weights to a lavie_jax model folder.

  python tools/convert_sd.py sd SRC --out DIR [--no-inflate] [--dtype bfloat16]
      SRC: a diffusers Stable Diffusion 1.x folder (unet/ vae/ text_encoder/ tokenizer/ ...,
      .safetensors or .bin) or one original-layout .ckpt/.safetensors file. The SD UNet is inflated to
      LaVie's base 3-D UNet: every 2-D weight copied, the temporal layers freshly initialised with zero
      output projections (so the model equals SD on every frame: the paper's starting point).
  python tools/convert_sd.py upscaler SRC --out DIR [--no-inflate] [--dtype bfloat16]
      SRC: a diffusers Stable Diffusion x4 upscaler folder (UNet with 7 input channels and a
      noise-level embedding, x4 VAE, OpenCLIP-H text encoder in CLIP-text form, tokenizer). The UNet
      is inflated to LaVie's VSR 3-D UNet: every 2-D weight copied, the temporal layers freshly
      initialised with zero output projections (so it equals the upscaler on every frame).
  python tools/convert_sd.py lavie --stage STAGE --checkpoint lavie_STAGE.pt --sd DIR --out DIR
      STAGE: base, interpolation or vsr. A released LaVie checkpoint (a state dict, or a dict with
      "ema") plus a folder converted with the commands above whose VAE, text encoder and tokenizer
      complete the model folder: an 'sd' conversion of SD 1.4 for base and interpolation, an
      'upscaler' conversion for vsr.

The output folder is written to a temporary folder and renamed at the end: a failure leaves nothing
behind. PyTorch pickles are only opened with torch.load(weights_only=True).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

EXAMPLES = """examples:
  python tools/convert_sd.py sd ~/models/stable-diffusion-v1-4 --out converted/sd14_base
  python tools/convert_sd.py sd ~/models/v1-5-pruned-emaonly.safetensors --out converted/sd15_base
  python tools/convert_sd.py lavie --stage base --checkpoint lavie_base.pt --sd converted/sd14_base \\
      --out converted/lavie_base
  python tools/convert_sd.py lavie --stage interpolation --checkpoint lavie_interpolation.pt \\
      --sd converted/sd14_base --out converted/lavie_interpolation
  python tools/convert_sd.py upscaler ~/models/stable-diffusion-x4-upscaler --out converted/x4_upscaler
  python tools/convert_sd.py lavie --stage vsr --checkpoint lavie_vsr.pt --sd converted/x4_upscaler \\
      --out converted/lavie_vsr
"""


def _json_file(path: str) -> dict:
    p = pathlib.Path(path)
    if not p.is_file():
        raise argparse.ArgumentTypeError(f"{path!r} is not a file")
    return json.loads(p.read_text())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python tools/convert_sd.py",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="source", required=True)
    sd = sub.add_parser("sd", help="Stable Diffusion 1.x → a base-stage folder (inflated)")
    sd.add_argument("src", type=pathlib.Path, help="diffusers folder or single .ckpt/.safetensors file")
    sd.add_argument("--no-inflate", action="store_true", help="keep a purely 2-D UNet (no temporal layers)")
    for name in ("unet", "vae", "text"):
        sd.add_argument(
            f"--{name}-config",
            type=_json_file,
            default=None,
            help=f"JSON config of the {name} for single files (default: SD 1.x's)",
        )
    upscaler = sub.add_parser("upscaler", help="the SD x4 upscaler → a VSR-stage folder (inflated)")
    upscaler.add_argument("src", type=pathlib.Path, help="diffusers stable-diffusion-x4-upscaler folder")
    upscaler.add_argument(
        "--no-inflate", action="store_true", help="keep a purely 2-D UNet (no temporal layers)"
    )
    lavie = sub.add_parser("lavie", help="a released LaVie checkpoint → a model folder")
    lavie.add_argument("--stage", choices=("base", "interpolation", "vsr"), required=True)
    lavie.add_argument(
        "--checkpoint",
        type=pathlib.Path,
        required=True,
        help=".pt (state dict or {'ema': ...}) or .safetensors",
    )
    lavie.add_argument(
        "--sd",
        type=pathlib.Path,
        required=True,
        help="a folder converted with 'sd' (base, interpolation) or 'upscaler' (vsr)",
    )
    lavie.add_argument(
        "--unet-config",
        type=_json_file,
        default=None,
        help="JSON of the original UNet constructor arguments (default: the released config)",
    )
    for p in (sd, upscaler, lavie):
        p.add_argument(
            "--out", type=pathlib.Path, required=True, help="the model folder to create (must not exist)"
        )
        p.add_argument(
            "--dtype",
            choices=("float32", "bfloat16"),
            default="float32",
            help="storage dtype of the weights (default float32, also for fp16/bf16 sources); bfloat16 "
            "halves the folder, which still loads as float32 modules",
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from lavie_jax.convert import to_folder

    t0 = time.perf_counter()
    try:
        if args.source == "sd":
            out = to_folder.convert_sd(
                args.src,
                args.out,
                inflate=not args.no_inflate,
                dtype=args.dtype,
                unet_config=args.unet_config,
                vae_config=args.vae_config,
                text_config=args.text_config,
            )
        elif args.source == "upscaler":
            out = to_folder.convert_upscaler(
                args.src, args.out, inflate=not args.no_inflate, dtype=args.dtype
            )
        else:
            out = to_folder.convert_lavie(
                args.stage,
                args.checkpoint,
                args.out,
                sd_folder=args.sd,
                unet_config=args.unet_config,
                dtype=args.dtype,
            )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
