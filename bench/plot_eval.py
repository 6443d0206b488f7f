"""Per-dataset bar charts of benchmark metrics, to compare runs (models, quantisations, generation modes).

    python3 bench/plot_eval.py results/int4/metrics.json results/none/metrics.json --out eval.png
    python3 bench/plot_eval.py results/HumanRef/answer.jsonl --out humanref.png     # computes the metrics

Each input is a metrics JSON written by `locateanything metrics --output_path` or an evaluation JSONL written
by `locateanything eval` (its metrics are computed on the fly). One panel per measure — F1 at IoU 0.5,
mean F1 over IoU 0.5:0.95, point F1 (pointing groups), GUI / hallucination accuracy, ScreenSpot-Pro
accuracy per source-type — with one bar per task_dataset group and input. `--labels` names the inputs
(default: their file names); `--show` opens a window instead of only writing the PNG.
"""
from __future__ import annotations

import argparse
import json
import os
import sys


def load_metrics(path: str) -> dict:
    """A metrics dict (box groups or ScreenSpot-Pro) from a metrics JSON or an evaluation JSONL."""
    if path.endswith(".jsonl"):
        from locateanything_native.eval import metrics

        records = metrics.load_records(path)
        if metrics.is_sspro(records):
            return metrics.sspro_metrics(records)
        return metrics.box_metrics(records)
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f)


def panels(metrics_by_run: dict) -> list[tuple[str, dict]]:
    """[(panel title, {group: {run: value}})] for the measures the inputs have."""
    measures = [
        ("F1 @ IoU 0.5", lambda g: None if g.get("pointing") else g["iou_50"]["f1"]),
        ("mean F1 @ IoU 0.5:0.95", lambda g: None if g.get("pointing") else g["mean"]["f1"]),
        ("point F1", lambda g: g["point"]["f1"] if g.get("pointing") else None),
        ("GUI accuracy", lambda g: g.get("gui_accuracy")),
        ("hallucination accuracy", lambda g: g.get("hallucination_accuracy")),
    ]
    out = []
    for title, get in measures:
        table: dict = {}
        for run, m in metrics_by_run.items():
            for key, group in (m.get("groups") or {}).items():
                value = get(group)
                if value is not None:
                    table.setdefault(key, {})[run] = value
        if table:
            out.append((title, table))
    table = {}
    for run, m in metrics_by_run.items():
        for key, v in (m.get("category_accuracies") or {}).items():
            table.setdefault(key, {})[run] = v["accuracy"]
        if "overall_accuracy" in m:
            table.setdefault("overall", {})[run] = m["overall_accuracy"]
    if table:
        out.append(("ScreenSpot-Pro accuracy", table))
    return out


def plot(metrics_by_run: dict, out: str | None, show: bool = False):
    import matplotlib

    if not show:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = panels(metrics_by_run)
    if not items:
        raise SystemExit("nothing to plot: no metric groups in the inputs")
    runs = list(metrics_by_run)
    fig, axes = plt.subplots(len(items), 1, figsize=(max(6.0, 1.2 + 0.9 * max(len(t) for _, t in items) * len(runs)),
                                                     3.2 * len(items)), squeeze=False)
    width = 0.8 / len(runs)
    for ax, (title, table) in zip(axes[:, 0], items):
        keys = list(table)
        for i, run in enumerate(runs):
            xs = [k + (i - (len(runs) - 1) / 2) * width for k in range(len(keys))]
            values = [table[key].get(run, 0.0) for key in keys]
            bars = ax.bar(xs, values, width, label=run)
            ax.bar_label(bars, fmt="%.3f", fontsize=7)
        ax.set_title(title)
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels(keys, rotation=20, ha="right", fontsize=8)
        ax.set_ylim(0, 1.08)
        if len(runs) > 1:
            ax.legend(fontsize=8)
    fig.tight_layout()
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        fig.savefig(out, dpi=120)
    if show:
        plt.show()
    return fig


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("inputs", nargs="+", help="metrics JSON (locateanything metrics --output_path) or evaluation JSONL")
    p.add_argument("--labels", nargs="+", help="one name per input (default: file names)")
    p.add_argument("--out", default="eval_metrics.png", help="PNG to write (default eval_metrics.png)")
    p.add_argument("--show", action="store_true")
    args = p.parse_args(argv)
    labels = args.labels or [os.path.relpath(path) for path in args.inputs]
    if len(labels) != len(args.inputs):
        p.error("give one --labels name per input")
    plot({label: load_metrics(path) for label, path in zip(labels, args.inputs)}, args.out, args.show)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
