"""Benchmarks, printed as ratios measured side by side in one run (this machine's speed drifts).

    python tools/benchmark.py unet      # UNet3D forward vs PyTorch spatial-only and the matmul rate
    python tools/benchmark.py sample    # denoising steps at the real latent shape, time and peak RSS
    python tools/benchmark.py data      # decoded clips/s with 0/1/2 grain workers, latent batches/s
    python tools/benchmark.py cascade   # each cascade stage's loop at the real shapes: compile, s/step, RSS
    python tools/benchmark.py train     # training steps/s, examples/s, peak RSS: plain, remat, frozen spatial

Each subcommand lives in ``tools/benchmarks/<name>.py`` as ``main(argv)``.
"""

import importlib
import pathlib
import sys

BENCH_DIR = pathlib.Path(__file__).resolve().parent / "benchmarks"


def available() -> list[str]:
    return sorted(p.stem for p in BENCH_DIR.glob("*.py") if not p.stem.startswith("_"))


def main(argv: list[str]) -> int:
    names = available()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in names:
        print(__doc__)
        print("available:", ", ".join(names) or "(none)")
        if argv and argv[0] not in ("-h", "--help"):
            print(f"error: unknown benchmark {argv[0]!r}; expected one of {names}", file=sys.stderr)
            return 2
        return 0
    sys.path.insert(0, str(BENCH_DIR.parent))
    module = importlib.import_module(f"benchmarks.{argv[0]}")
    return module.main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
