"""Training throughput and memory: ``python tools/benchmark.py train [--steps N] [--frames F] [--size S]``.

Runs ``python -m lavie_jax.train`` (configs/tiny_base.py with a 4-level UNet of the given widths)
at F×S×S latents (default 16×32×32: 64×64 synthetic clips decoded by the data pipeline and encoded by
tiny_base's ×2 random VAE inside the step), three times in fresh processes: as is, with
``remat=True``, and with frozen spatial layers (``optim.trainable=temporal``).
Prints steps/s and examples/s over the steps after the first (compilation excluded), the data-loader
wait fraction, each process's peak RSS (``ru_maxrss`` of that child, from ``os.wait4``: compiling
the step is usually its largest moment), its peak RSS while training after the first step (the kernel's
high-water mark is reset through ``/proc/PID/clear_refs`` once the first step is logged, then read
until the process ends: what the steps themselves hold) and XLA's temporary buffer size of the
compiled step (``step_memory.json``: where the activations kept for the backward pass live, what
remat shrinks).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

VARIANTS = {
    "baseline": [],
    "remat": ["--config.remat=True"],
    "frozen spatial": ["--config.optim.trainable=temporal"],
}


def run_variant(extra: list[str], args: argparse.Namespace, workdir: pathlib.Path) -> dict:
    command = [
        sys.executable,
        "-m",
        "lavie_jax.train",
        f"--config={pathlib.Path(__file__).resolve().parents[2] / 'configs' / 'tiny_base.py'}",
        f"--workdir={workdir}",
        f"--config.model.block_out_channels=({','.join(str(w) for w in args.widths)})",
        f"--config.model.down_block_types={('CrossAttnDownBlock3D',) * 3 + ('DownBlock3D',)!r}",
        f"--config.model.up_block_types={('UpBlock3D',) + ('CrossAttnUpBlock3D',) * 3!r}",
        f"--config.data.num_frames={args.frames}",
        "--config.data.frame_stride=1",
        f"--config.data.synthetic.frames={args.frames}",
        f"--config.data.height={args.size * 2}",  # tiny_base's random VAE downsamples ×2
        f"--config.data.width={args.size * 2}",
        f"--config.data.num_images={args.images}",
        f"--config.batch_size={args.batch}",
        f"--config.num_steps={args.steps}",
        "--config.log_every=1",
        f"--config.checkpoint_every={args.steps}",
        "--config.sample_every=0",
        *extra,
    ]
    env = {**os.environ, "LAVIE_JAX_CACHE_DIR": "off"}  # measure compilation honestly, every time
    workdir.mkdir(parents=True)
    log = workdir / "stderr.txt"
    t0 = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err)
        steps_peak = steady_peak_rss(proc.pid, workdir / "metrics.jsonl")
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage: its peak RSS alone
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"{' '.join(command)} failed:\n{log.read_text()[-4000:]}")
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    timed = records[1:]  # the first step includes compilation
    seconds = sum(1.0 / r["steps_per_second"] for r in timed)
    return {
        "steps_per_second": len(timed) / seconds,
        "examples_per_second": len(timed) * args.batch / seconds,
        "data_wait_fraction": sum(r["data_wait_fraction"] / r["steps_per_second"] for r in timed) / seconds,
        "first_step_seconds": 1.0 / records[0]["steps_per_second"],
        "peak_rss_gib": usage.ru_maxrss / 2**20,  # ru_maxrss is in KiB on Linux
        "steps_peak_rss_gib": steps_peak / 2**30,
        "step_temp_gib": json.loads((workdir / "step_memory.json").read_text())["temp"] / 2**30,
        "wall_seconds": wall,
        "final_loss": records[-1]["loss"],
    }


def _status_bytes(pid: int, field: str) -> int | None:
    try:
        status = pathlib.Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    line = next((x for x in status.splitlines() if x.startswith(field + ":")), None)
    return int(line.split()[1]) * 1024 if line else None


def steady_peak_rss(pid: int, metrics: pathlib.Path) -> int:
    """Peak RSS of `pid` from its first logged step on (bytes): once `metrics` has a line, reset the
    high-water mark (``clear_refs`` 5), then follow ``VmHWM`` until the process ends (polling, 20 ms)."""
    reset, peak = False, 0
    while True:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:  # ended (not reaped)
            return peak
        if not reset and metrics.is_file() and metrics.read_text().strip():
            pathlib.Path(f"/proc/{pid}/clear_refs").write_text("5")
            reset = True
        if reset:
            peak = max(peak, _status_bytes(pid, "VmHWM") or 0)
        time.sleep(0.02)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python tools/benchmark.py train", description=__doc__)
    parser.add_argument("--steps", type=int, default=6, help="training steps per variant (first = compile)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=32, help="latent height = width")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--images", type=int, default=0, help="joint images per example")
    parser.add_argument("--widths", type=int, nargs=4, default=(64, 128, 256, 256), help="block_out_channels")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error(f"--steps must be ≥ 2 (the first one compiles), got {args.steps}")
    print(
        f"base UNet widths {tuple(args.widths)}, latents {args.frames}×{args.size}×{args.size}, "
        f"batch {args.batch}, {args.images} images, {args.steps} steps per variant"
    )
    print(
        f"{'variant':<16}{'steps/s':>9}{'ex/s':>9}{'data wait':>11}{'1st step s':>12}{'peak RSS GiB':>14}"
        f"{'steps RSS GiB':>15}{'step temp GiB':>15}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants:
            r = run_variant(VARIANTS[name], args, pathlib.Path(tmp) / name.replace(" ", "_"))
            print(
                f"{name:<16}{r['steps_per_second']:>9.3f}{r['examples_per_second']:>9.3f}"
                f"{r['data_wait_fraction']:>11.1%}{r['first_step_seconds']:>12.1f}{r['peak_rss_gib']:>14.2f}"
                f"{r['steps_peak_rss_gib']:>15.2f}{r['step_temp_gib']:>15.3f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
