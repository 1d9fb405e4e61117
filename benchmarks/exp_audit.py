"""Experiment: the selection audit with other FQE settings, reusing the candidates' true values.

    python -m benchmarks.exp_audit --project /path/to/project [--set fqe.steps=4000 ...] [--out NAME]

A project that has run the evaluate stage with an audit (reports/plots/audit.csv holds every audited
candidate's true value from simulator roll-outs) answers "which estimator chooses best?" again for other
estimator settings without new roll-outs: the true values do not depend on the estimators, and the audited
candidates are the same as long as evaluate.fqe.candidates and evaluate.audit.candidates are. Prints and writes
benchmarks/results/<NAME>.md (default audit.md) with Spearman, regret and top-5 precision per estimator.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "benchmarks" / "results"


def _coerce(v: str):
    for f in (int, float):
        try:
            return f(v)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(v.lower(), v)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--project", required=True, type=Path)
    ap.add_argument("--set", action="append", default=[], help="evaluate.<key>=<value> override, e.g. fqe.steps=4000")
    ap.add_argument("--out", default=None, help="results file name (without .md); default: print only")
    a = ap.parse_args(argv)
    os.chdir(a.project)
    os.environ.setdefault("ADRL_TRACKING", "off")
    import numpy as np
    import pandas as pd
    import yaml

    from adrl.config import validate_config
    from adrl.ope import workflow as wf
    from pipeline import evaluate as ev

    raw = yaml.safe_load(Path("params.yaml").read_text())
    for s in a.set:
        key, val = s.split("=", 1)
        node = raw["evaluate"]
        *path, last = key.split(".")
        for p in path:
            node = node.setdefault(p, {})
        node[last] = _coerce(val)
    cfg = validate_config(raw)
    truth = pd.read_csv(ev.AUDIT_CSV)
    if truth.empty:
        raise SystemExit(f"{a.project / ev.AUDIT_CSV}: no audited candidates (run the evaluate stage with an audit)")
    states = ev.read_states()
    list_runs, greedy = ev.rl_api()
    runs = list_runs(ev.MODELS_TRAIN)
    t0, c0 = time.time(), time.process_time()
    out = wf.run_evaluation(cfg.evaluate, states, runs, greedy, fqe_fn=ev.fqe_api(cfg, states, runs, greedy))
    wall, cpu = time.time() - t0, time.process_time() - c0
    sc = out["scores"]
    key = sc["run_id"].astype(str) + "@" + sc["step"].astype(str)
    tv = dict(zip(truth["run_id"].astype(str) + "@" + truth["step"].astype(str), truth["true_value"]))
    idx = sc.index[key.isin(tv) & sc["fqe"].notna()].to_numpy()
    res = wf.run_audit(sc, idx, np.array([tv[k] for k in key[idx]]), out["selection"]["cutoff"])
    conv = int(sc.loc[idx, "fqe_converged"].fillna(False).sum())
    lines = [f"# Selection audit, {a.project.name}: {len(idx)} candidates with true values from "
             f"{a.project / ev.AUDIT_CSV}", "",
             f"evaluate overrides: {a.set or 'none'}; FQE of {len(out['fqe_candidates'])} candidates, "
             f"{conv} of the audited {len(idx)} converged; evaluation {wall:.0f} s wall, {cpu:.0f} s CPU "
             f"(load {os.getloadavg()[0]:.1f})", "",
             "| estimator | Spearman | regret | top-5 precision | selects (true value) |", "|---|---|---|---|---|"]
    for e, r in res["estimators"].items():
        lines.append(f"| {e} | {r['spearman']:.2f} | {r['regret']:.1f} | {r['top5_precision']:.1f} | "
                     f"{r['selected_run_id']} @ {r['selected_step']} ({r['selected_true']:.1f}) |")
    lines += ["", f"winner (lowest regret, then Spearman): **{res['winner']}**; best true value among the "
              f"candidates {truth['true_value'].max():.1f}", "",
              f"command: `python -m benchmarks.exp_audit --project {a.project} "
              + " ".join(f"--set {s}" for s in a.set) + "`", ""]
    text = "\n".join(lines)
    print(text)
    if a.out:
        (OUT / f"{a.out}.md").write_text(text)
        (OUT / f"{a.out}.json").write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
