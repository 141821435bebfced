"""Evaluation results as JSON (every song's scores) and as Markdown tables laid out like the paper's Tables 1-2."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict

from pdmer.evaluate import paper
from pdmer.evaluate.tasks import METRICS, CurveScore, mean_scores

TASK_TITLES = {"dmer": "Traditional DMER (mean labels)", "pdmer": "Personalized DMER (per listener, after adaptation)"}
COLUMN_ORDER = [f"{dim}_{metric}" for dim in ("arousal", "valence") for metric in METRICS]  # the paper's order


def task_result(results: list[CurveScore], **settings) -> dict:
    per_listener = defaultdict(list)
    for result in results:
        per_listener[result.listener].append(result)
    return {
        **settings,
        "curves": len(results),
        "mean": mean_scores(results),
        "listeners": {who: mean_scores(rows) for who, rows in sorted(per_listener.items())} if len(per_listener) > 1
        else {},
        "per_curve": [asdict(r) for r in results],
    }


def paper_rows(task: str, dataset_name: str) -> dict[str, tuple]:
    table = paper.DMER if task == "dmer" else paper.PDMER
    for name, rows in table.items():
        if dataset_name.lower().startswith(name.lower()):
            return rows
    return {}


def number(value: float) -> str:
    return f"{round(value, 3) + 0.0:.3f}"  # + 0.0: no "-0.000" for a float-error negative zero


def markdown(reports: dict | list[dict]) -> str:
    """One table per task with a row per evaluated model (scores averaged over curves, as the paper), then the
    paper's rows when the dataset is theirs."""
    reports = [reports] if isinstance(reports, dict) else reports
    first = reports[0]
    models = ", ".join(r["model"] for r in reports)
    lines = [f"# pdmer eval: {models} on {first['dataset']} (split {first['split']})", ""]
    for task in first["tasks"]:
        result = first["tasks"][task]
        lines += [f"## {TASK_TITLES[task]}", ""]
        if task == "pdmer":
            lines += [f"Support: {result['support']}; {result['curves']} query curves.", ""]
        else:
            lines += [f"{result['curves']} songs.", ""]
        lines += [
            "| Model | Arousal |  |  | Valence |  |  |",
            "|---|---|---|---|---|---|---|",
            "|  | CCC ↑ | PCC ↑ | RMSE ↓ | CCC ↑ | PCC ↑ | RMSE ↓ |",
        ]
        for report in reports:
            if task in report["tasks"]:
                mean = report["tasks"][task]["mean"]
                lines.append("| " + " | ".join([f"**{report['model']}**"] + [number(mean[k]) for k in COLUMN_ORDER])
                             + " |")
        for name, values in paper_rows(task, first["dataset"]).items():
            lines.append("| " + " | ".join([name] + [number(v) for v in values]) + " |")
        lines.append("")
    return "\n".join(lines)
