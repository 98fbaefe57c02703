"""Judge how well a cascade follows synthetic-set prompts ("a red circle moving left, slowly").

    python tools/evaluate_synthetic.py                      # the shipped default model, 20 prompts
    python tools/evaluate_synthetic.py --model ROOT --prompts 40 --seed 1234 --stages base,interp,vsr

ROOT holds base/ [interpolation/ vsr/] model folders. The prompts are drawn with --seed (use another
seed than the training set's). For each prompt the base video's object colour and motion direction are
read by `lavie_jax.data.synthetic_judge` and compared with the prompt; printed: every prompt's verdict,
the base stage's accuracy (colour and direction both right), the mean centroid jump of the base and
interpolated videos (the interpolated one should be smoother: about ¼ of the base's), and for VSR the
size ratio and the fraction of frames in which the object is still found.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import numpy as np


def evaluate(model: str | None, prompts: list[str], *, stages: str, seed: int) -> dict:
    """Run the cascade on `prompts` and judge every stage's videos; returns the summary dict."""
    from lavie_jax import default_model
    from lavie_jax.data import synthetic_judge
    from lavie_jax.pipelines import cascade

    pipe = cascade.CascadePipeline.from_pretrained(model or default_model.path())
    videos = {}
    for result in pipe.run_stages(pipe.prepare(prompts, stages=stages, seed=seed), progress_bar=True):
        videos[result.stage] = result.video
        print(
            f"{result.stage}: {result.video.shape[1:]} compile {result.compile_s:.1f} s, "
            f"sampling {result.sample_s:.1f} s",
            file=sys.stderr,
        )
    rows = []
    for i, prompt in enumerate(prompts):
        color, direction = synthetic_judge.expected_of(prompt)
        row = {"prompt": prompt}
        for stage, video in videos.items():
            v = synthetic_judge.judge(video[i])
            row[stage] = dataclasses.asdict(v)
        base = row["base"]
        row["color_ok"], row["direction_ok"] = base["color"] == color, base["direction"] == direction
        row["correct"] = row["color_ok"] and row["direction_ok"]
        rows.append(row)
    summary = {
        "prompts": len(prompts),
        "base_accuracy": float(np.mean([r["correct"] for r in rows])),
        "base_color_accuracy": float(np.mean([r["color_ok"] for r in rows])),
        "base_direction_accuracy": float(np.mean([r["direction_ok"] for r in rows])),
    }
    for stage in videos:
        summary[f"{stage}_mean_jump"] = float(np.nanmean([r[stage]["mean_jump"] for r in rows]))
        summary[f"{stage}_detected_fraction"] = float(np.mean([r[stage]["detected_fraction"] for r in rows]))
    if "vsr" in videos:
        previous = videos["interpolation" if "interpolation" in videos else "base"]
        summary["vsr_size_ratio"] = videos["vsr"].shape[2] / previous.shape[2]
    return {"rows": rows, "summary": summary}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="folder of stage folders (default: the shipped model)")
    parser.add_argument("--prompts", type=int, default=20, help="number of prompts to draw")
    parser.add_argument(
        "--seed", type=int, default=1234, help="seed of the prompt list (not the training one)"
    )
    parser.add_argument("--sample-seed", type=int, default=0, help="sampling seed of the cascade")
    parser.add_argument("--stages", default="base,interp,vsr", help="stages to run, e.g. base or base,interp")
    parser.add_argument("--json", default=None, help="also write the verdicts and summary to this file")
    args = parser.parse_args(argv)
    if args.prompts < 1:
        parser.error(f"--prompts={args.prompts}; expected ≥ 1")
    from lavie_jax.data import synthetic_judge

    prompts = synthetic_judge.prompt_list(args.prompts, args.seed)
    start = time.perf_counter()
    result = evaluate(args.model, prompts, stages=args.stages, seed=args.sample_seed)
    for row in result["rows"]:
        verdicts = "  ".join(
            f"{s}: {row[s]['color']}/{row[s]['direction']}"
            for s in ("base", "interpolation", "vsr")
            if s in row
        )
        print(f"{'ok ' if row['correct'] else 'BAD'} {row['prompt']:<40} {verdicts}")
    for key, value in result["summary"].items():
        print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
    print(f"({time.perf_counter() - start:.0f} s)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
