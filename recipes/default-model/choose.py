"""Apply the selection rule of SELECTION.md to candidates' `pdmer eval --task real --json` reports.

    python recipes/default-model/choose.py A-musicnn=RUN/curves.json,RUN/levels.json A-descriptors=... \
        --peer vibenet-4q-val.json [--meta] [--markdown table.md]

A candidate's reports (one or several, comma-separated) must hold VGMIDI val (curves), 4Q val and EMOPIA val
(levels) for its model; with --meta, VGMIDI val listeners too. Prints a row per candidate (targets met, S, hard limit, profile gain) and the winner: fewest hard
limits broken, then most targets, then S (ties within 0.005), then the gain (ties within 0.002), then the earlier
(simpler) candidate, as the rule orders them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

MIN_STD = 0.02  # a 4Q val clip whose curve moves less than this in a dimension breaks the hard limit
S_TIE, GAIN_TIE = 0.005, 0.002
MEAN = "training mean"  # the baseline row every pdmer eval report carries


def rows_of(report: dict) -> dict[str, dict]:
    """The model's (not the training mean's) evaluations per dataset name prefix (VGMIDI, 4Q, EMOPIA), merged over
    the reports (curves and listeners are separate evaluations of the same VGMIDI split)."""
    out: dict[str, dict] = {}
    for row in report["results"]:
        if row["model"] in report["models"]:
            out.setdefault(row["data"].split(":")[0], {}).update(row["evaluations"])
    return out


def means_of(report: dict) -> dict[str, dict]:
    return rows_of({**report, "models": {MEAN}})


def score(name: str, report: dict, peer: dict, meta: bool) -> dict:
    ours, means = rows_of(report), means_of(report)
    four, emopia = ours["4Q"]["levels"], ours["EMOPIA"]["levels"]
    curves = ours["VGMIDI"]["curves"]["mean"]
    mean_curves = means["VGMIDI"]["curves"]["mean"]
    vibe = peer["evaluations"]["levels"]
    targets = {
        "4Q A AUC >= 0.90": four["arousal_auc"] >= 0.90,
        "4Q V AUC >= 0.70": four["valence_auc"] >= 0.70,
        "4Q A AUC >= vibenet": four["arousal_auc"] >= vibe["arousal_auc"],
        "4Q V AUC >= vibenet": four["valence_auc"] >= vibe["valence_auc"],
        "VGMIDI A PCC >= 0.30": curves["arousal_pcc"] >= 0.30,
        "VGMIDI V PCC > 0": curves["valence_pcc"] > 0,
        "VGMIDI CCC > training mean (both)": all(curves[f"{d}_ccc"] > mean_curves[f"{d}_ccc"]
                                                  for d in ("valence", "arousal")),
    }
    gain = None
    if meta:
        listeners = ours["VGMIDI"]["listeners"]
        targets["profile gain CI > 0 (both)"] = all(listeners[d]["gain_low"] > 0 for d in ("valence", "arousal"))
        gain = (listeners["valence"]["gain"] + listeners["arousal"]["gain"]) / 2
    s = ((four["arousal_auc"] + four["valence_auc"]) / 2 - 0.5
         + (emopia["arousal_auc"] + emopia["valence_auc"]) / 2 - 0.5
         + (curves["arousal_ccc"] + curves["valence_ccc"]) / 2) / 3
    moves = min(four["valence_min_std"], four["arousal_min_std"]) > MIN_STD
    return {"name": name, "targets": targets, "met": sum(targets.values()), "S": s, "gain": gain,
            "hard_ok": moves, "min_std": (four["valence_min_std"], four["arousal_min_std"]),
            "4q": (four["arousal_auc"], four["valence_auc"]), "emopia": (emopia["arousal_auc"], emopia["valence_auc"]),
            "vgmidi": (curves["arousal_pcc"], curves["valence_pcc"], curves["arousal_ccc"], curves["valence_ccc"])}


def better(a: dict, b: dict) -> bool:
    """Does ``a`` beat ``b`` (``b`` came first, so it wins ties)?"""
    if a["hard_ok"] != b["hard_ok"]:
        return a["hard_ok"]
    if a["met"] != b["met"]:
        return a["met"] > b["met"]
    if abs(a["S"] - b["S"]) > S_TIE:
        return a["S"] > b["S"]
    if a["gain"] is not None and b["gain"] is not None and abs(a["gain"] - b["gain"]) > GAIN_TIE:
        return a["gain"] > b["gain"]
    return False


def table(rows: list[dict]) -> str:
    lines = ["| Candidate | targets met | S | 4Q A / V AUC | EMOPIA A / V AUC | VGMIDI A / V PCC | VGMIDI A / V CCC | "
             "min within-song std V / A | profile gain |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        gain = "-" if r["gain"] is None else f"{r['gain']:+.4f}"
        lines.append(f"| {r['name']} | {r['met']}/{len(r['targets'])} | {r['S']:.4f} | {r['4q'][0]:.3f} / "
                     f"{r['4q'][1]:.3f} | {r['emopia'][0]:.3f} / {r['emopia'][1]:.3f} | {r['vgmidi'][0]:.3f} / "
                     f"{r['vgmidi'][1]:.3f} | {r['vgmidi'][2]:.3f} / {r['vgmidi'][3]:.3f} | {r['min_std'][0]:.3f} / "
                     f"{r['min_std'][1]:.3f} | {gain} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("candidates", nargs="+", help="NAME=EVAL.json[,EVAL2.json], in the recipe's order (simpler "
                        "first)")
    parser.add_argument("--peer", type=Path, required=True, help="vibenet on 4Q val (benchmarks/peer_vibenet.py)")
    parser.add_argument("--meta", action="store_true", help="the meta stage: the profile gain is a target and a key")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args()
    peer = json.loads(args.peer.read_text())
    rows = []
    for entry in args.candidates:
        name, _, paths = entry.partition("=")
        if not paths:
            raise SystemExit(f"{entry}: give NAME=EVAL.json[,EVAL2.json...]")
        reports = [json.loads(Path(path).read_text()) for path in paths.split(",")]
        # one model per candidate, whatever file name each report gives it (e.g. best or model.safetensors)
        merged = {"models": {m for report in reports for m in report["models"]} - {MEAN},
                  "results": [r for report in reports for r in report["results"]]}
        rows.append(score(name, merged, peer, args.meta))
    winner = rows[0]
    for row in rows[1:]:
        if better(row, winner):
            winner = row
    text = table(rows)
    print(text)
    for r in rows:
        missed = [t for t, ok in r["targets"].items() if not ok]
        print(f"{r['name']}: missed {', '.join(missed) or 'none'}{'' if r['hard_ok'] else '; BREAKS the hard limit'}")
    print(f"winner: {winner['name']}")
    if args.markdown:
        args.markdown.write_text(text + f"\n\nWinner: {winner['name']}\n")


if __name__ == "__main__":
    main()
