"""AD-BCQ's dynamics model against the simulator's true sub-action effects on the default world (issue 14 item 2),
for both survival heads (train.dynamics.survival_input: next_state | action).

    python -m benchmarks.exp_model_check --root /path/to/a/pipeline/run    # reads data/ and models/ais there

Reads a finished pipeline's states and trajectory tables, cohort artefacts and AIS encoder under ``--root`` (read
only), fits the dynamics ensemble of params.yaml's train.dynamics (one fit per survival input and seed) on the
states table's train split, and runs adrl/modelcheck.py with evaluate.model_check and evaluate.truth.seed. Writes
benchmarks/results/model_check.{json,md}: counts and aggregates only.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd

OUT = Path(__file__).parent / "results"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("."))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--survival-inputs", nargs="+", default=["next_state", "action"])
    ap.add_argument("--n-patients", type=int, default=None, help="default: evaluate.model_check.n_patients")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from adrl.ais.encoder import AisEncoder
    from adrl.cohort.featurize import Featurizer
    from adrl.config import load_config
    from adrl.modelcheck import fit_readout, model_check
    from adrl.rl.data import transitions
    from adrl.rl.dynamics import fit_dynamics
    from adrl.rl.train import dynamics_config

    cfg = load_config("params.yaml")
    mc = cfg.evaluate.model_check
    n = args.n_patients or mc.n_patients
    root = args.root
    art = root / "data/processed/cohort"
    states_path = root / "data/processed/states.parquet"
    fz, enc = Featurizer.load(cfg.cohort, art), AisEncoder.load(root / "models/ais")
    edges = json.loads((art / "action_edges.json").read_text())
    states = pd.read_parquet(states_path)
    readout = fit_readout(states, pd.read_parquet(root / "data/processed/trajectories.parquet"),
                          json.loads((art / "normalization.json").read_text()))
    train, val = transitions(states, "train"), transitions(states, "val")
    res = {}
    for surv in args.survival_inputs:
        for seed in args.seeds:
            p = cfg.train.model_copy(update={"dynamics": cfg.train.dynamics.model_copy(update={"survival_input": surv})})
            t0 = time.perf_counter()
            dyn, rep, _ = fit_dynamics(train, val, dynamics_config(p), seed, progress=False)
            fit_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            out = model_check(dyn.expected, readout, n, cfg.evaluate.truth.seed, cfg.synth, fz, enc, edges,
                              mc.decision_bin)
            res[f"{surv}/seed{seed}"] = {**out, "fit_seconds": fit_s, "check_seconds": time.perf_counter() - t0,
                                         "validation": {k: rep[k] for k in ("ensemble/surv_auroc", "ensemble/dz_r2",
                                                                            "ensemble/term_auroc")}
                                         | ({"ensemble/surv_auroc_at_predicted": rep["ensemble/surv_auroc_at_predicted"]}
                                            if "ensemble/surv_auroc_at_predicted" in rep else {})}
            print(f"{surv} seed {seed}: {out['sign_disagreements']} sign disagreements "
                  f"({out['sign_disagreements_clear']} clear)", flush=True)
    sha = hashlib.sha256(states_path.read_bytes()).hexdigest()[:16]
    meta = {"command": "python -m benchmarks.exp_model_check " + " ".join(sys.argv[1:]), "states_sha256": sha,
            "n_train_transitions": len(train), "load": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M")}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "model_check.json").write_text(json.dumps({"meta": meta, "results": res}, indent=1) + "\n")
    (args.out / "model_check.md").write_text(markdown(meta, res))


def _f(v, fmt="{:+.2f}"):
    return "" if v is None else fmt.format(v)


def markdown(meta: dict, res: dict) -> str:
    L = ["# The dynamics model against the simulator's truth (issue 14 item 2)", "",
         f"`{meta['command']}` on {meta['date']} (load average {', '.join(f'{x:.1f}' for x in meta['load'])}); "
         f"states table sha256 {meta['states_sha256']}, {meta['n_train_transitions']} train transitions. "
         "Method: adrl/modelcheck.py. `*`: the model's sign is opposite to the simulator's; `!`: and the "
         "simulator's value is beyond 2 Monte-Carlo SE.", ""]
    for name, c in res.items():
        v = c["validation"]
        L += [f"## {name}", "",
              f"{c['n_patients_checked']} of {c['n_patients']} simulated patients in the ICU at decision bin "
              f"{c['decision_bin']}; readout validation R^2: MAP {c['readout_val_r2']['map']:.2f}, lactate "
              f"{c['readout_val_r2']['lactate']:.2f}; model validation: survival AUROC "
              f"{v['ensemble/surv_auroc']:.3f}"
              + (f" (at the predicted next state {v['ensemble/surv_auroc_at_predicted']:.3f})"
                 if "ensemble/surv_auroc_at_predicted" in v else "")
              + f", dz R^2 {v['ensemble/dz_r2']:.3f}. Sign disagreements: {c['sign_disagreements']} "
              f"({c['sign_disagreements_clear']} clear).", "",
              "| arm | P(end) model | sim | P(survive) model | sim survival | dMAP model | sim | dlactate model | sim "
              "| survival vs no-op model | sim | MAP vs no-op model | sim | lactate vs no-op model | sim |",
              "|" + "---|" * 15]
        for r in c["arms"]:
            e = r.get("effect_vs_noop") or {"model": {}, "sim": {}}

            def mark(key, val, sim_val, se):
                if key not in r["sign_disagreements"]:
                    return _f(val)
                return _f(val) + (" !" if sim_val is not None and se is not None and abs(sim_val) > 2 * se else " *")
            s = r["sim"]
            L.append("| " + " | ".join([
                r["arm"], _f(r["model"]["p_end"], "{:.3f}"), _f(s["p_end"], "{:.3f}"),
                _f(r["model"]["p_survive"], "{:.3f}"), _f(s["survival"], "{:.3f}"),
                mark("d_map", r["model"]["d_map"], s["d_map"], s["d_map_se"]), _f(s["d_map"]),
                mark("d_lactate", r["model"]["d_lactate"], s["d_lactate"], s["d_lactate_se"]), _f(s["d_lactate"]),
                mark("effect_survival", e["model"].get("p_survive"), e["sim"].get("survival"),
                     e["sim"].get("survival_se")), _f(e["sim"].get("survival")),
                mark("effect_map", e["model"].get("map"), e["sim"].get("map"), e["sim"].get("map_se")),
                _f(e["sim"].get("map")),
                mark("effect_lactate", e["model"].get("lactate"), e["sim"].get("lactate"), e["sim"].get("lactate_se")),
                _f(e["sim"].get("lactate"))]) + " |")
        L.append("")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    main()
