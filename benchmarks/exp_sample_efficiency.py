"""Sample efficiency (method.md 7, E1) and the mixer ablation (E2) on the synthetic world, scored by the
simulator's truth.

    python -m benchmarks.exp_sample_efficiency                         # the recorded run (make experiments)
    python -m benchmarks.exp_sample_efficiency --sizes 100 200 --seeds 0 --interactions 0 --patients 300

Protocol:

1. For every value of the world's ``interaction`` knob, one synthetic MIMIC-III world (``--stays`` ICU
   stays, synthetic seed 0) goes through the real ``synthesize``, ``ingest`` and ``cohort`` stages in a
   scratch project (``dvc repro cohort``). The cohort's train split is the pool the training sets are drawn
   from; its validation split (fixed across cells) is used for early stopping only.
2. For every (interaction, seed, N) cell: draw N training stays from the pool (each seed redraws the data;
   within a seed the sets are nested), refit the AIS encoder on them (seed = the cell seed), encode, fit the
   projected dynamics ensemble, and train BCQ, factored BCQ and AD-BCQ with every mixer, with and without
   augmentation: the same threshold, steps, batch and seed for every learner (equal candidate budgets: one
   run each). The policy scored is each run's final checkpoint (no OPE selection: at these sizes WIS is
   uninformative, see benchmarks/results/pipeline.md, and selection noise would mask learning).
3. Every policy acts on the same ``--patients`` new simulated septic patients with the same exogenous noise
   (common random numbers), through the cohort featuriser and the cell's AIS encoder, step by step
   (adrl/groundtruth.py). True value = 100 x survival. The clinician's value is the same roll-out with the
   simulator's clinician.

``--arms`` (issue 14) replaces the default set (BCQ, factored BCQ, AD-BCQ x every mixer x augmentation on/off) by
named arms: ``bcq``, ``factored_bcq``, ``adbcq-<mixer>-noaug``, ``adbcq-<mixer>-aug`` (params.yaml's
train.dynamics) and ``adbcq-<mixer>-aug-<option>[-<option>...]`` with options ``soft | sample | logged``
(train.dynamics.termination), ``mean`` (next_state), ``shuffle`` or ``noise<scale>`` (control, noise_scale) and
``survaction | survnext`` (survival_input: one dynamics fit per survival head). Every arm's run gets the value check on
the cell's validation split (``converged``). With ``--arms`` the markdown is a per-arm table with paired differences
against factored BCQ and BCQ (when present) and the contrasts the arms answer, the figure is <name>.png (per world:
value against N, and each arm minus factored BCQ), and the results merge into <name>.json: a run on other worlds,
sizes, seeds or arms adds to it (runs of other settings are refused), so the grid can be run a part at a time.

The cells (and the clinician's roll-outs) are units of an executor (adrl/executor.py): ``--executor local`` (a
process pool of ``--workers``, the default) or ``ray`` (Ray tasks; ``--address`` as params.yaml's executor.address);
without ``--executor``, params.yaml's ``executor`` block decides. The results come back to this process, which
writes every output, so they are the same whichever executor ran the cells. On a cluster of several machines the
cells read the worlds and write their cache in ``--work``: put it on a filesystem every node sees.

Writes benchmarks/results/sample_efficiency.{json,md} and the figures sample_efficiency.png and
mixer_ablation.png. Aggregates only: no patient rows leave the scratch directory. Cells are cached in the
work directory (``--work``), so an interrupted run resumes.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import multiprocessing as mp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adrl.io import write_json  # noqa: E402  (after the path: the module also runs as a script)

OUT = ROOT / "benchmarks" / "results"
MIXERS = ("mean", "sum", "linear", "mlp2", "relu")


# ---- phase 1: one world and cohort per interaction value ------------------------------------------
def world_label(interaction: float, confounder: float = 0.0) -> str:
    """A world's key in the results: str(interaction) ("0.0"), with "-c<strength>" for a hidden confounder."""
    return str(float(interaction)) + (f"-c{float(confounder):g}" if confounder else "")


def build_world(work: Path, interaction: float, stays: int, confounder: float = 0.0) -> Path:
    from tests.e2e.harness import make_project, run

    project = work / (f"world-i{interaction:g}" + (f"-c{confounder:g}" if confounder else ""))
    done = project / "data" / "processed" / "trajectories.parquet"
    if done.exists():
        return project
    make_project(project, {"synth": {"n_stays": stays, "seed": 0, "interaction": float(interaction),
                                     "confounder": float(confounder)},
                           "cohort": {"split": {"fractions": [0.8, 0.1, 0.1]}}})
    t0 = time.time()
    env_tracking = os.environ.get("ADRL_TRACKING")
    os.environ["ADRL_TRACKING"] = "off"
    try:
        run(["dvc", "repro", "cohort"], project, timeout=7200)
    finally:
        if env_tracking is None:
            os.environ.pop("ADRL_TRACKING", None)
        else:
            os.environ["ADRL_TRACKING"] = env_tracking
    print(f"world interaction={interaction:g} confounder={confounder:g}: {stays} stays -> cohort in {time.time() - t0:.0f} s", flush=True)
    return project


# ---- phase 2: one cell ----------------------------------------------------------------------------
def run_cell(project: str, world: str, seed: int, n_train: int, a: dict, cell_dir: str) -> dict:
    """Fit AIS + dynamics + every learner on N stays of ``world`` (a label of a["worlds"]), and roll every policy
    out in the simulator. With named arms, each arm's result is kept on its own (arms/<name>/result.json) and
    reused when its settings match (:func:`arm_key`), also from the recorded results (a["recorded"])."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import numpy as np
    import pandas as pd
    import torch

    from adrl.ais.data import REQUIRED_COLUMNS
    from adrl.ais.train import fit_encoder, torch_settings
    from adrl.cohort.featurize import Featurizer
    from adrl.config import load_config
    from adrl.groundtruth import true_value
    from adrl.rl.data import transitions
    from adrl.rl.dynamics import fit_dynamics
    from adrl.rl.policy import Policy
    from adrl.rl.train import RunSpec, dynamics_config, train_run

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    project, cell_dir = Path(project), Path(cell_dir)
    interaction, confounder = a["world_params"][world]
    out_file = cell_dir / "cell.json"
    cached = json.loads(out_file.read_text()) if out_file.exists() else None
    prior = {}
    if a.get("arms"):   # named arms: every arm with a result of the same settings is reused, the rest trained
        prior = prior_arms(a, world, seed, n_train, cell_dir, cached)
        # every arm done (in this cell's folder or in the recorded results, e.g. on a new machine or with a fresh
        # --work): nothing is fitted or trained again, the cell's facts come from where its runs were recorded
        if set(a["arms"]) <= set(prior):
            base = cached if cached is not None else next(iter(recorded_cells(a, world, seed, n_train)), None)
            if base is not None:
                return {**base, "world": world, "confounder": confounder, "arms": a["arms"],
                        "runs": {k: prior[k] for k in a["arms"]}}
        cached = None
    if cached is not None and cached.get("arms"):   # a cell of named arms is not a cell of the default set
        cached = None
    if cached is not None and all("actions" in r for r in cached["runs"].values()):
        return cached
    cell_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    cfg = load_config(project / "params.yaml")
    proc = project / "data" / "processed"
    df = pd.read_parquet(proc / "trajectories.parquet", columns=list(REQUIRED_COLUMNS))
    pool = np.sort(df.loc[df["split"] == "train", "traj"].unique())
    if n_train > len(pool):
        raise SystemExit(f"--sizes: {n_train} training stays asked, the pool has {len(pool)} (raise --stays)")
    chosen = np.random.default_rng(10_000 + seed).permutation(pool)[:n_train]  # nested across N within a seed
    sub = df[(df["split"] == "val") | df["traj"].isin(chosen)].reset_index(drop=True)

    # the same update budget at every N: params.yaml's epochs and patience are for >= 8 batches per epoch
    # (1,000 stays in batches of 128); fewer stays get proportionally more epochs
    scale = max(1, 8 // -(-n_train // cfg.ais.batch_size))
    ais_p = cfg.ais.model_copy(update={"seed": seed, "threads": 1, "max_epochs": cfg.ais.max_epochs * scale,
                                       "patience": cfg.ais.patience * scale})
    fit = fit_encoder(sub, ais_p, where=f"cell N={n_train}", require_splits=("train", "val"))
    with torch_settings(1):
        states = fit.encoder.encode_trajectories(sub)
    tr, va = transitions(states, "train"), transitions(states, "val")
    t_ais = time.time() - t0
    if cached is not None:  # a cell of an earlier version: the AIS refit is deterministic, add the diagnostics
        for name, run in cached["runs"].items():
            run["actions"] = action_profile(Policy.load(cell_dir / "runs" / run_dir_name(name, a, seed)), va)
        write_json(out_file, cached)
        return cached

    dyn_p = cfg.train.dynamics.model_copy(update=a.get("dynamics") or {})
    p = cfg.train.model_copy(update={"steps": a["steps"], "checkpoint_every": a["steps"], "threads": 1,
                                     "dynamics": dyn_p})
    t1 = time.time()
    dyn, dyn_report, _ = fit_dynamics(tr, va, dynamics_config(p), seed, progress=False)
    dyns = {p.dynamics.survival_input: (dyn, dyn_report)}   # one fit per survival head the arms ask for
    t_dyn = time.time() - t1

    fz = Featurizer.load(cfg.cohort, proc / "cohort")
    edges = json.loads((proc / "cohort" / "action_edges.json").read_text())
    runs = {}
    if a.get("arms"):   # named arms (issue 14): each in its own folder, with the value check and FQE selection
        runs = run_arms(a, cell_dir, states, tr, va, p, dyns, seed, n_train, fz, fit.encoder, edges, cfg, prior)
        dyn_report = dyns.get(p.dynamics.survival_input, (None, dyn_report))[1]
    specs = [] if a.get("arms") else [RunSpec("bcq", a["tau"], seed), RunSpec("factored_bcq", a["tau"], seed)]
    specs += [] if a.get("arms") else [RunSpec("adbcq", a["tau"], seed, m, aug) for m in a["mixers"]
                                       for aug in (True, False)]
    for spec in specs:
        t2 = time.time()
        rec = train_run(spec, tr, p, cell_dir, dyn if spec.needs_dynamics else None, "cell", progress=False)
        pol = Policy.load(cell_dir / "runs" / spec.run_id)
        t3 = time.time()
        tv = true_value(pol.greedy, a["patients"], a["rollout_seed"], cfg.synth, fz, fit.encoder, edges,
                        progress=False)
        name = spec.algorithm if spec.algorithm != "adbcq" else f"adbcq-{spec.mixer}-{'aug' if spec.augment else 'noaug'}"
        runs[name] = {"value": tv["value"], "se": tv["se"], "dose_recovery": tv["dose_recovery"],
                      "actions": action_profile(pol, va),
                      "train_s": t3 - t2, "rollout_s": time.time() - t3,
                      "steps_per_s": rec["steps_per_s"], "final_loss": {k: v for k, v in rec["final"].items()
                                                                      if k.startswith("loss/")}}
    res = {"world": world, "interaction": interaction, "confounder": confounder, "seed": seed, "n_train": n_train,
           "steps": a["steps"], "arms": a.get("arms"),
           "n_train_transitions": len(tr), "n_val_stays": int(sub.loc[sub["split"] == "val", "traj"].nunique()),
           "ais": {k: fit.metrics[k] for k in ("best_epoch", "val_nll", "naive_val_nll", "seconds")},
           "dynamics": {k: dyn_report[k] for k in ("ensemble/dz_r2", "linear_baseline/dz_r2", "ensemble/dz_nll", "ensemble/term_auroc",
                                                   "ensemble/surv_auroc", "interaction_index", "epochs")},
           "seconds": {"ais": t_ais, "dynamics": t_dyn, "total": time.time() - t0}, "runs": runs}
    write_json(out_file, res)
    return res


ARM_OPTIONS = {"soft": {"termination": "soft"}, "sample": {"termination": "sample"},
               "logged": {"termination": "logged"}, "mean": {"next_state": "mean"},
               "shuffle": {"control": "shuffle"}, "survaction": {"survival_input": "action"},
               "survnext": {"survival_input": "next_state"}}


def parse_arm(name: str, tau: float, seed: int):
    """An arm name -> (RunSpec, train.dynamics overrides); see the module docstring."""
    from adrl.rl.train import RunSpec

    if name in ("bcq", "factored_bcq"):
        return RunSpec(name, tau, seed), {}
    parts = name.split("-")
    if len(parts) < 3 or parts[0] != "adbcq" or parts[1] not in MIXERS or parts[2] not in ("aug", "noaug"):
        raise SystemExit(f"--arms: unknown arm {name!r} (bcq, factored_bcq, adbcq-<mixer>-<aug|noaug>[-<option>...])")
    opts: dict = {}
    for o in parts[3:]:
        if o in ARM_OPTIONS:
            opts |= ARM_OPTIONS[o]
        elif o.startswith("noise"):
            try:
                opts |= {"control": "noise", "noise_scale": float(o[5:])}
            except ValueError:
                raise SystemExit(f"--arms: {name!r}: noise needs a scale, e.g. noise0.5") from None
        else:
            raise SystemExit(f"--arms: {name!r}: unknown option {o!r} ({', '.join(ARM_OPTIONS)}, noise<scale>)")
    if opts and parts[2] == "noaug":
        raise SystemExit(f"--arms: {name!r}: model options need augmentation (aug)")
    return RunSpec("adbcq", tau, seed, parts[1], parts[2] == "aug"), opts


def arm_key(a: dict) -> dict:
    """The settings an arm's result depends on besides its name and cell (world, seed, N): a result is reused
    only when all of these match."""
    return {"steps": a["steps"], "tau": a["tau"], "patients": a["patients"], "rollout_seed": a["rollout_seed"],
            "checkpoints": a["checkpoints"], "stays": a["stays"], "dynamics": a.get("dynamics") or {}}


def recorded_cells(a: dict, world: str, seed: int, n_train: int) -> list[dict]:
    """The cells of the recorded results (a["recorded"]) for this world, seed and N."""
    return [c for c in a.get("recorded") or [] if c.get("world") == world and c.get("seed") == seed
            and c.get("n_train") == n_train]


def prior_arms(a: dict, world: str, seed: int, n_train: int, cell_dir: Path, cached: dict | None) -> dict:
    """{arm: result} of the arms already done with the same settings: in the cell folder, in its cell.json, or in
    the recorded results (a["recorded"]: cells of an earlier <name>.json, e.g. benchmarks/results/sample_efficiency.json)."""
    key = arm_key(a)
    found = {}
    sources = recorded_cells(a, world, seed, n_train) + ([cached] if cached is not None else [])
    for src in sources:
        for name, r in (src.get("runs") or {}).items():
            if r.get("key") == key:
                found[name] = r
    for name in a["arms"]:
        f = cell_dir / "arms" / name / "result.json"
        if f.exists():
            r = json.loads(f.read_text())
            if r.get("key") == key:
                found[name] = r
    return found


def run_arms(a: dict, cell_dir: Path, states, tr, va, p, dyns: dict, seed: int, n_train: int, fz, encoder, edges,
             cfg, prior: dict) -> dict:
    """Train the arms of a cell that have no result yet, pick each run's checkpoint by FQE (evaluate.select_by
    fqe: the highest FQE value at the validation episodes' starts among converged fits), and roll out every new
    arm's final and selected checkpoints together on the same patients (common random numbers)."""
    import numpy as np
    import pandas as pd

    from adrl.groundtruth import true_values
    from adrl.ope.workflow import _select_by_value, split_arrays
    from adrl.rl.dynamics import fit_dynamics
    from adrl.rl.fqe import FQEConfig, fqe_checkpoints
    from adrl.rl.policy import Policy, greedy_matrix
    from adrl.rl.train import dynamics_config, train_run
    from adrl.rl.valuecheck import check_set

    key = arm_key(a)
    todo = [k for k in a["arms"] if k not in prior]
    out = {k: prior[k] for k in a["arms"] if k in prior}
    if not todo:
        return out
    check = check_set(states, "val", p.gamma, where=f"cell N={n_train}")
    sp = split_arrays(states, "val", where=f"cell N={n_train}")
    starts = np.r_[0, np.flatnonzero(sp.episode_ids[1:] != sp.episode_ids[:-1]) + 1]
    f = cfg.evaluate.fqe
    fc = FQEConfig(steps=f.steps, batch_size=f.batch_size, lr=f.lr, hidden=f.hidden, layers=f.layers,
                   target_every=f.target_every, gamma=f.gamma, r_max=cfg.train.r_max, clip_values=f.clip_values,
                   tol=f.tol, trend_window=f.trend_window, seed=f.seed)
    every = max(1, a["steps"] // a["checkpoints"])
    new, pols = {}, {}
    for name in todo:
        spec, opts = parse_arm(name, a["tau"], seed)
        pa = p.model_copy(update={"dynamics": p.dynamics.model_copy(update=opts), "checkpoint_every": every})
        if spec.needs_dynamics and pa.dynamics.survival_input not in dyns:
            dyns[pa.dynamics.survival_input] = fit_dynamics(tr, va, dynamics_config(pa), seed, progress=False)[:2]
        t2 = time.time()
        arm_dir = cell_dir / "arms" / name
        rec = train_run(spec, tr, pa, arm_dir, dyns[pa.dynamics.survival_input][0] if spec.needs_dynamics
                        else None, "cell", progress=False, check=check)
        run_dir = arm_dir / "runs" / spec.run_id
        t3 = time.time()
        steps = [int(x) for x in rec["steps"]]
        fq = fqe_checkpoints(pd.DataFrame({"run_id": spec.run_id, "step": steps}),
                             [{"run_id": spec.run_id, "run_dir": run_dir}], greedy_matrix, tr,
                             {"start": sp.z[starts].astype(np.float32)}, fc, progress=False)
        conv = np.asarray(fq["convergence"]["converged"], bool)
        fv = np.asarray(fq["convergence"]["value"], float)
        i, flagged = _select_by_value(fv, conv)
        pol = Policy.load(run_dir)
        pols[name] = pol.greedy
        if steps[i] != steps[-1]:
            pols[name + "@selected"] = Policy.load(run_dir, step=steps[i]).greedy
        vc = rec["value_check"]
        new[name] = {"key": key, "converged": vc["converged"],
                     "value_check": {k: vc[k] for k in ("q_logged", "mc_return", "ratio")},
                     "actions": action_profile(pol, va),
                     "selected": {"step": steps[i], "fqe": float(fv[i]), "fqe_converged": bool(conv[i]),
                                  "flagged": bool(flagged), "fqe_by_step": dict(zip(map(str, steps), fv.tolist())),
                                  "value_check_ratio": float(rec["value_check_history"]["ratio"][i])},
                     "train_s": t3 - t2, "fqe_s": time.time() - t3, "steps_per_s": rec["steps_per_s"],
                     "final_loss": {k: v for k, v in rec["final"].items() if k.startswith("loss/")}}
    t4 = time.time()
    tv = true_values(pols, a["patients"], a["rollout_seed"], cfg.synth, fz, encoder, edges, progress=False)
    each = (time.time() - t4) / len(todo)
    for name, r in new.items():
        r["value"], r["se"], r["dose_recovery"] = tv[name]["value"], tv[name]["se"], tv[name]["dose_recovery"]
        s = tv.get(name + "@selected", tv[name])
        r["selected"]["value"], r["selected"]["se"] = s["value"], s["se"]
        r["rollout_s"] = each
        write_json(cell_dir / "arms" / name / "result.json", r)
        out[name] = r
    return {k: out[k] for k in a["arms"]}


def write_md_arms(summary: dict, cells: list[dict], a: dict, meta: dict) -> str:
    """The markdown of a run with named arms: per world and N, each arm's true value (final checkpoint and the
    FQE-selected one), paired differences against factored BCQ and BCQ, and how many runs passed the value check."""
    import numpy as np

    done = meta.get("cells_done", len(cells))
    earlier = meta.get("earlier") or []
    L = [f"`{meta['command']}` on {meta['host']} ({meta['cores']} cores), {meta['date']}; load average at the start "
         f"{meta['load_start']}, at the end {meta['load_end']}; {meta['wall_min']:.0f} min wall"
         + ("" if not meta.get("cells_total") else f"; {done} of {meta['cells_total']} cells done")
         + (f"; merged with the results recorded by {len(earlier)} earlier run(s) (listed at the end). " if earlier
            else f"; the cells {sum(c['seconds']['total'] for c in cells) / 60:.0f} worker-minutes. ")
         + f"Worlds of {a['stays']} stays (synthetic seed 0); per cell N training stays (each seed redraws them), AIS "
         f"refitted, one run per arm (tau {a['tau']}, {a['steps']} steps, {a['checkpoints']} checkpoints, profile "
         f"{meta['profile']}). Each run's final checkpoint and its FQE-selected checkpoint (evaluate.fqe fitted on the "
         "cell's train split; the highest value at the validation episodes' starts among converged fits) are scored "
         f"on the same {a['patients']} simulated patients (common random numbers; true value = 100 x survival). "
         "Converged: the value check on the cell's validation split (Q of the logged actions within [0.8, 1.25] of "
         "the Monte-Carlo return). Differences are paired by seed, with a t-interval over seeds.", ""]
    for w in a["worlds"]:
        s = summary.get(w)
        if not s or not s["by_size"]:
            continue
        i, c = a["world_params"][w]
        name = f"interaction = {i:g}" + (f", hidden confounder {c:g}" if c else "")
        cl, nt = s["clinician"], s["no_treatment"]
        L += [f"## {name}", "",
              (f"Clinician {cl['value']:.1f} (SE {cl['se']:.1f}), no treatment {nt['value']:.1f}. " if cl else "")
              + "True value, mean over seeds (per seed):", "",
              "| N | seeds | arm | final | per seed | selected | converged | final - factored BCQ [95% CI] | "
              "final - BCQ [95% CI] | selected - factored BCQ [95% CI] |", "|---|---|---|---|---|---|---|---|---|---|"]
        for n, row in s["by_size"].items():
            P = row["policies"]
            for k in a["arms"]:
                if k not in P:
                    continue
                diffs = []
                for ref, part in (("factored_bcq", None), ("bcq", None), ("factored_bcq", "selected")):
                    va, vb = seed_pairs(P, k, ref, part) if ref in P and ref != k else ([], [])
                    diffs.append(fmt_diff(*paired(va, vb)) if va else "")
                L.append(f"| {n} | {len(P[k]['values'])} | {k} | {P[k]['mean']:.1f} | "
                         f"{', '.join(f'{v:.1f}' for v in P[k]['values'])} | {P[k]['selected']['mean']:.1f} | "
                         f"{sum(P[k]['converged'])}/{len(P[k]['converged'])} | " + " | ".join(diffs) + " |")
        L.append("")
        L += contrast_rows(s, a)
        at = [x for x in cells if cell_world(x) == w]
        L += ["Value check (mean over seeds): Q of the logged actions / Monte-Carlo return; FQE-selected step; greedy "
              "actions on the validation decisions: no fluid, vasopressor:", "",
              "| N | arm | Q / return | selected step | no fluid | vasopressor |", "|---|---|---|---|---|---|"]
        for n in s["by_size"]:
            cc = [x for x in at if x["n_train"] == int(n)]
            for k in a["arms"]:
                rr = [x["runs"][k] for x in cc if k in x["runs"]]
                if not rr:
                    continue
                L.append(f"| {n} | {k} | {np.mean([r['value_check']['ratio'] for r in rr]):.2f} | "
                         f"{np.mean([r['selected']['step'] for r in rr]):.0f} | "
                         f"{np.mean([r['actions']['fluid'][0] for r in rr]):.2f} | "
                         f"{np.mean([1 - r['actions']['vaso'][0] for r in rr]):.2f} |")
        L.append("")
    L += worlds_pooled_rows(summary, a)
    if earlier:
        L += ["Earlier runs merged into these results (each added worlds, sizes, seeds or arms; runs of other "
              "settings are never mixed in):", ""]
        L += [f"- `{e.get('command', '?')}` ({e.get('date', '?')}, {e.get('wall_min', 0):.0f} min wall)" for e in earlier]
        L.append("")
    return "\n".join(L)


def arm_contrasts(arms: list[str]) -> list[tuple[str, str, str]]:
    """The questions the named arms answer (issue 14's E3), as (arm, reference, question) pairs present in
    ``arms``: each AD-BCQ arm against factored BCQ; augmentation against none; model content against its controls
    (shuffle, noise); the termination rules against each other; the survival head with the action against the
    next-state head."""
    out = [("factored_bcq", "bcq", "factored against joint BCQ")]
    out += [(k, "factored_bcq", "against factored BCQ") for k in arms if k.startswith("adbcq")]
    for k in arms:
        base, _, rest = k.partition("-aug")
        if not k.startswith("adbcq") or not _:
            continue
        opts = rest.strip("-").split("-") if rest else []
        out.append((k, f"{base}-noaug", "augmentation against none"))
        if "shuffle" in opts or any(o.startswith("noise") for o in opts):
            plain = "-".join([base + "-aug"] + [o for o in opts if o != "shuffle" and not o.startswith("noise")])
            out.append((plain, k, "the model's next states against this control"))
        if "survaction" in opts:
            out.append((k, "-".join([base + "-aug"] + [o for o in opts if o != "survaction"]),
                        "survival head with the action against the next-state head"))
        if opts in (["soft"], ["logged"]):
            out.append((k, f"{base}-aug-sample", "termination rule against sample"))
    for k in arms:   # E2, the mixer ablation: each mixer against linear, everything else the same
        parts = k.split("-")
        if k.startswith("adbcq-") and len(parts) > 2 and parts[1] != "linear":
            out.append((k, "-".join(["adbcq", "linear"] + parts[2:]), "mixer against linear"))
    order = ["factored against joint BCQ", "against factored BCQ", "augmentation against none",
             "the model's next states against this control", "termination rule against sample",
             "survival head with the action against the next-state head", "mixer against linear"]
    seen, res = set(), []
    for k, ref, q in sorted(out, key=lambda c: order.index(c[2])):   # stable: arms keep their order
        if k in arms and ref in arms and (k, ref) not in seen:
            seen.add((k, ref))
            res.append((k, ref, q))
    return res


def contrast_rows(s: dict, a: dict) -> list[str]:
    """Markdown rows: each contrast of arm_contrasts, final checkpoints, paired by seed at each N and pooled over
    every (N, seed) pair (a t-interval over those pairs: the mean effect over the sizes run)."""
    cons = arm_contrasts(a["arms"])
    sizes = list(s["by_size"])
    if not cons or not sizes:
        return []
    L = ["Contrasts (final checkpoints; arm minus reference, paired by seed; last column: every (N, seed) pair "
         "pooled):", "", "| question | arm - reference | " + " | ".join(f"N = {n}" for n in sizes) + " | pooled |",
         "|---|---|" + "---|" * (len(sizes) + 1)]

    for k, ref, q in cons:
        cells, pa, pb = [], [], []
        for n in sizes:
            P = s["by_size"][n]["policies"]
            va, vb = seed_pairs(P, k, ref) if k in P and ref in P else ([], [])
            cells.append(fmt_diff(*paired(va, vb)) if va else "")
            pa += va
            pb += vb
        if pa:
            L.append(f"| {q} | {k} - {ref} | " + " | ".join(cells) + f" | {fmt_diff(*paired(pa, pb))} |")
    return L + [""] if len(L) > 4 else []


def worlds_pooled_rows(summary: dict, a: dict) -> list[str]:
    """Markdown, where more than one world was run: each contrast of arm_contrasts pooled over the worlds (at each N
    the pairs are (world, seed); the last column pools every (world, N, seed) triple, a t-interval that treats them
    as independent), and how many of the per-world, per-N intervals of an AD-BCQ arm against factored BCQ exclude 0,
    at the final and at the FQE-selected checkpoint, beside the number expected by chance at 5%. The README's
    pooled findings are read from here."""
    ws = [w for w in a["worlds"] if (summary.get(w) or {}).get("by_size")]
    cons = arm_contrasts(a["arms"])
    if len(ws) < 2 or not cons:
        return []
    rows = {w: {int(n): r["policies"] for n, r in summary[w]["by_size"].items()} for w in ws}
    sizes = sorted({n for w in ws for n in rows[w]})
    L = ["## All worlds pooled", "",
         f"Contrasts over the {len(ws)} worlds (final checkpoints; arm minus reference, paired by world and seed at "
         "each N; last column: every (world, N, seed) triple pooled, treated as independent, no correction for the "
         "number of contrasts):", "",
         "| question | arm - reference | " + " | ".join(f"N = {n}" for n in sizes) + " | pooled | pairs |",
         "|---|---|" + "---|" * (len(sizes) + 2)]
    for k, ref, q in cons:
        cells, pa, pb = [], [], []
        for n in sizes:
            va, vb = [], []
            for w in ws:
                P = rows[w].get(n) or {}
                if k in P and ref in P:
                    x, y = seed_pairs(P, k, ref)
                    va += x
                    vb += y
            cells.append(fmt_diff(*paired(va, vb)) if va else "")
            pa += va
            pb += vb
        if pa:
            L.append(f"| {q} | {k} - {ref} | " + " | ".join(cells) + f" | {fmt_diff(*paired(pa, pb))} | {len(pa)} |")
    L.append("")
    for part, label in ((None, "final checkpoints"), ("selected", "FQE-selected checkpoints")):
        per, up, down, total = [], 0, 0, 0
        for w in ws:
            i, c = a["world_params"][w]
            hit = tot = 0
            for n in sizes:
                P = rows[w].get(n) or {}
                for k in a["arms"]:
                    if not k.startswith("adbcq") or k not in P or "factored_bcq" not in P:
                        continue
                    _, ci = paired(*seed_pairs(P, k, "factored_bcq", part))
                    if ci is None:
                        continue
                    tot += 1
                    up += ci[0] > 0
                    down += ci[1] < 0
                    hit += ci[0] > 0 or ci[1] < 0
            total += tot
            per.append(f"interaction = {i:g}" + (f", hidden confounder {c:g}" if c else "") + f": {hit} of {tot}")
        L.append(f"AD-BCQ arms against factored BCQ, one interval per world, N and arm ({label}): {up + down} of "
                 f"{total} exclude 0 ({up} above, {down} below; {0.05 * total:.1f} expected by chance at 5%); "
                 + "; ".join(per) + ".")
        L.append("")
    return L


def merge_recorded(recorded: dict | None, cells: list[dict], clin: dict, a: dict) -> tuple[list[dict], dict, dict]:
    """The results file of a run with named arms holds the recorded file's cells too (``--name``): a run on another
    world, size, seed or arm set adds to what was recorded instead of replacing it. Recorded runs of other settings
    (:func:`arm_key`; main refuses such a file before any work, so this is a guard) are left out and counted on
    stderr. Returns (cells, the run's arguments widened to every world, size, seed and arm in them, {world:
    clinician values})."""
    if not recorded:
        return list(cells), a, clin
    key = arm_key(a)
    merged: dict = {}
    dropped = 0
    for c in recorded.get("cells") or []:
        runs = {k: r for k, r in (c.get("runs") or {}).items() if r.get("key") == key}
        dropped += len(c.get("runs") or {}) - len(runs)
        if runs:
            merged[(cell_world(c), c["seed"], c["n_train"])] = {**c, "runs": runs}
    if dropped:
        print(f"{dropped} recorded runs have other settings than this run (steps, tau, patients, ...): left out of "
              "the results", file=sys.stderr, flush=True)
    for c in cells:
        k = (cell_world(c), c["seed"], c["n_train"])
        merged[k] = {**c, "runs": {**(merged[k]["runs"] if k in merged else {}), **c["runs"]}}
    ra = recorded.get("args") or {}
    worlds = list(dict.fromkeys([w for w in ra.get("worlds") or [] if any(k[0] == w for k in merged)]
                                + list(a["worlds"])))
    wp = {w: tuple(v) for w, v in (ra.get("world_params") or {}).items() if w in worlds} | dict(a["world_params"])
    out = list(merged.values())
    arms = [k for k in ra.get("arms") or [] if any(k in c["runs"] for c in out)] + list(a["arms"])
    wide = {**a, "worlds": worlds, "world_params": wp, "arms": list(dict.fromkeys(arms)),
            "sizes": sorted({c["n_train"] for c in out} | set(a["sizes"])),
            "seeds": sorted({c["seed"] for c in out} | set(a["seeds"]))}
    rs = recorded.get("summary") or {}
    cl = {w: {"clinician": rs[w].get("clinician"), "no_treatment": rs[w].get("no_treatment")}
          for w in worlds if w in rs and w not in clin and rs[w].get("clinician")}
    return out, wide, {**cl, **clin}


def run_dir_name(name: str, a: dict, seed: int) -> str:
    """The training run id of a policy name of this script (bcq, factored_bcq, adbcq-<mixer>-<aug|noaug>)."""
    return f"{name}-tau{a['tau']:g}-s{seed}"


def action_profile(pol, va) -> dict:
    """What the greedy policy does on the validation decisions: agreement with the clinicians, and the
    shares of each fluid and vasopressor bin."""
    import numpy as np

    g = pol.greedy(va.z)
    return {"agree": float(np.mean(g == va.a)), "fluid": (np.bincount(g // 5, minlength=5) / len(g)).tolist(),
            "vaso": (np.bincount(g % 5, minlength=5) / len(g)).tolist(),
            "clinician_fluid": (np.bincount(va.a // 5, minlength=5) / len(g)).tolist(),
            "clinician_vaso": (np.bincount(va.a % 5, minlength=5) / len(g)).tolist()}


def clinician_value(project: Path, a: dict, work: Path) -> dict:
    from adrl.config import load_config
    from adrl.groundtruth import true_value

    f = work / f"{project.name}-clinician.json"
    if f.exists():
        return json.loads(f.read_text())
    cfg = load_config(project / "params.yaml")
    out = {name: true_value(name, a["patients"], a["rollout_seed"], cfg.synth, progress=False)
           for name in ("clinician", "no_treatment")}
    # this unit may run before any cell has made ``work`` (it used to fail there and be retried); written whole
    work.mkdir(parents=True, exist_ok=True)
    write_json(f, out)
    return out


# ---- summaries --------------------------------------------------------------------------------------
def cell_world(c: dict) -> str:
    return c.get("world") or world_label(c["interaction"])


def summarise(cells: list[dict], clin: dict, a: dict) -> dict:
    """Mean over seeds and paired differences (policy - reference, per seed) with a t-interval over seeds; worlds
    and sizes without a finished cell are left out (a partial run's results)."""
    import numpy as np

    out: dict = {}
    for w in a["worlds"]:
        rows = [c for c in cells if cell_world(c) == w]
        names = list(dict.fromkeys(k for c in rows for k in c["runs"]))
        table = {}
        for n in a["sizes"]:
            at = sorted([c for c in rows if c["n_train"] == n], key=lambda c: c["seed"])
            if not at:
                continue
            ent = {}
            for k in names:   # an arm run in only some cells (a grid merged from several runs) has its own seeds
                ck = [c for c in at if k in c["runs"]]
                if not ck:
                    continue
                v = np.array([c["runs"][k]["value"] for c in ck])
                ent[k] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else None,
                          "values": v.tolist(), "seeds": [c["seed"] for c in ck]}
                if a.get("arms"):
                    sv = np.array([c["runs"][k]["selected"]["value"] for c in ck])
                    ent[k]["selected"] = {"mean": float(sv.mean()), "values": sv.tolist()}
                    ent[k]["converged"] = [bool(c["runs"][k].get("converged")) for c in ck]
            table[n] = {"policies": ent, "seeds": [c["seed"] for c in at]}
        cw = clin.get(w) or {}
        out[w] = {"clinician": cw.get("clinician"), "no_treatment": cw.get("no_treatment"), "by_size": table}
    return out


def fmt_diff(m: float, ci) -> str:
    """A paired difference and its interval, as the tables print it: "+0.3 [-0.1, +0.7]"."""
    return f"{m:+.1f}" + ("" if ci is None else f" [{ci[0]:+.1f}, {ci[1]:+.1f}]")


def seed_pairs(P: dict, k: str, ref: str, part: str | None = None) -> tuple[list, list]:
    """The values of arm ``k`` and of ``ref`` (``part``: "selected" for the FQE-selected checkpoints) on the seeds
    both were run with, in the same order: the pairs a paired difference is taken over."""
    ek, er = (P[k], P[ref]) if part is None else (P[k][part], P[ref][part])
    sk, sr = P[k].get("seeds"), P[ref].get("seeds")
    if sk is None or sr is None:   # a summary without per-arm seeds: every arm ran in every cell
        return (list(ek["values"]), list(er["values"])) if len(ek["values"]) == len(er["values"]) else ([], [])
    both = [x for x in sk if x in sr]
    return [ek["values"][sk.index(x)] for x in both], [er["values"][sr.index(x)] for x in both]


def paired(vals_a, vals_b):
    import numpy as np
    from scipy import stats

    d = np.asarray(vals_a) - np.asarray(vals_b)
    if len(d) < 2:
        return float(d.mean()), None
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return float(d.mean()), (float(d.mean() - half), float(d.mean() + half))


def best_mixer(summary: dict, inter: str, a: dict, aug: bool) -> str:
    """The AD-BCQ mixer with the highest true value averaged over sizes and seeds (an oracle choice over five
    variants: reported beside the pre-specified headline `linear`)."""
    import numpy as np

    tag = "aug" if aug else "noaug"
    means = {m: np.mean([summary[inter]["by_size"][n]["policies"][f"adbcq-{m}-{tag}"]["mean"] for n in a["sizes"]])
             for m in a["mixers"]}
    return max(means, key=means.get)


def figure_curves(summary: dict, a: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    inters = [str(i) for i in a["interactions"]]
    fig, axes = plt.subplots(1, len(inters), figsize=(6.2 * len(inters), 4.6), sharey=True, squeeze=False)
    for ax, inter in zip(axes[0], inters):
        s = summary[inter]
        mb_on, mb_off = best_mixer(summary, inter, a, True), best_mixer(summary, inter, a, False)
        lines = [("bcq", "BCQ", "tab:blue", "-"), ("factored_bcq", "factored BCQ", "tab:orange", "-"),
                 ("adbcq-linear-aug", "AD-BCQ linear, aug (headline)", "tab:green", "-"),
                 (f"adbcq-{mb_on}-aug", f"AD-BCQ {mb_on}, aug (best mixer)", "tab:red", "--"),
                 (f"adbcq-{mb_off}-noaug", f"AD-BCQ {mb_off}, no aug (best mixer)"
                  + (" = factored BCQ" if mb_off == "sum" else ""), "tab:purple", ":")]
        seen = set()
        for key, label, color, ls in lines:
            if key in seen:
                continue
            seen.add(key)
            m = np.array([s["by_size"][n]["policies"][key]["mean"] for n in a["sizes"]])
            sd = np.array([s["by_size"][n]["policies"][key]["sd"] or 0.0 for n in a["sizes"]])
            k = len(a["seeds"])
            ax.plot(a["sizes"], m, ls, color=color, marker="o", label=label)
            ax.fill_between(a["sizes"], m - sd / np.sqrt(k), m + sd / np.sqrt(k), color=color, alpha=0.12)
        c = s["clinician"]
        ax.axhline(c["value"], color="black", lw=1, label=f"clinician ({c['value']:.1f})")
        ax.axhspan(c["value"] - c["se"], c["value"] + c["se"], color="black", alpha=0.08)
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(a["sizes"], [str(n) for n in a["sizes"]])
        ax.set_xlabel("training stays N")
        ax.set_title(f"interaction = {inter}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("true value (100 x survival)")
    axes[0][0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"True value against training size (mean over {len(a['seeds'])} seeds, band: +-1 SE over seeds; "
                 f"{a['patients']} simulated patients per roll-out, common random numbers)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure_arms(summary: dict, a: dict, path: Path) -> None:
    """Per world: true value against N for every arm (top; final checkpoints, mean over seeds +- 1 SE, the
    clinician as a line), and each arm minus factored BCQ, paired by seed, with its 95% t-interval (bottom)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    worlds = [w for w in a["worlds"] if summary.get(w, {}).get("by_size")]
    if not worlds:
        return
    fig, axes = plt.subplots(2, len(worlds), figsize=(6.4 * len(worlds), 8.2), squeeze=False, sharex="col")
    colors = plt.get_cmap("tab10" if len(a["arms"]) <= 10 else "tab20")   # one colour per arm
    for j, w in enumerate(worlds):
        s = summary[w]
        sizes = sorted(int(n) for n in s["by_size"])
        top, bot = axes[0][j], axes[1][j]
        one = len(sizes) == 1   # a world run at one N: the arms side by side instead of a curve

        here = [r for r in a["arms"] if any(r in s["by_size"][n]["policies"] for n in sizes)]

        def xs(ns, k):
            return (np.full(len(ns), float(here.index(a["arms"][k]))) if one
                    else np.array(ns) * (1 + 0.02 * (k - len(a["arms"]) / 2)))

        for k, arm in enumerate(a["arms"]):
            pts = [(n, s["by_size"][n]["policies"][arm]) for n in sizes if arm in s["by_size"][n]["policies"]]
            if not pts:
                continue
            x = xs([n for n, _ in pts], k)   # a small offset per arm
            m = np.array([e["mean"] for _, e in pts])
            se = np.array([(e["sd"] or 0.0) / np.sqrt(len(e["values"])) for _, e in pts])
            top.errorbar(x, m, yerr=se, marker="o", ms=4, capsize=2, color=colors(k), label=arm)
            if arm != "factored_bcq":
                sp = {n: seed_pairs(s["by_size"][n]["policies"], arm, "factored_bcq")
                      for n, _ in pts if "factored_bcq" in s["by_size"][n]["policies"]}
                d = [(n, paired(*v)) for n, v in sp.items() if v[0]]
                if d:
                    xd = xs([n for n, _ in d], k)
                    md = np.array([v[0] for _, v in d])
                    lo = np.array([v[0] - v[1][0] if v[1] else 0.0 for _, v in d])
                    hi = np.array([v[1][1] - v[0] if v[1] else 0.0 for _, v in d])
                    bot.errorbar(xd, md, yerr=[lo, hi], marker="o", ms=4, capsize=2, color=colors(k), label=arm)
        if s.get("clinician"):
            c = s["clinician"]
            top.axhline(c["value"], color="black", lw=1, label=f"clinician ({c['value']:.1f})")
        bot.axhline(0, color="black", lw=1)
        i, cf = a["world_params"][w]
        top.set_title(f"interaction = {i:g}" + (f", hidden confounder {cf:g}" if cf else ""))
        for ax in (top, bot):
            if one:
                ax.set_xlim(-1, len(here))
                ax.set_xticks([])
            else:
                ax.set_xscale("log")
                ax.minorticks_off()
                ax.set_xticks(sizes, [str(n) for n in sizes])
            ax.grid(alpha=0.3)
        bot.set_xlabel(f"the arms at N = {sizes[0]} training stays (colours as in the legend)" if one
                       else "training stays N")
    axes[0][0].set_ylabel("true value (100 x survival), final checkpoint")
    axes[1][0].set_ylabel("minus factored BCQ (paired by seed, 95% CI)")
    handles = {}
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab if not lab.startswith("clinician") else "clinician", h)
    fig.legend(list(handles.values()), list(handles), fontsize=7, loc="lower center", ncol=min(5, len(handles)))
    fig.suptitle(f"Sample efficiency with named arms (tau {a['tau']}, {a['steps']} steps; {a['patients']} simulated "
                 "patients per roll-out, common random numbers; bars: +-1 SE over seeds)", fontsize=9)
    fig.tight_layout(rect=(0, 0.03 + 0.018 * -(-len(handles) // 5), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure_mixers(summary: dict, a: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    inters = [str(i) for i in a["interactions"]]
    sizes = [a["sizes"][0], a["sizes"][-1]]
    fig, axes = plt.subplots(1, len(inters), figsize=(6.2 * len(inters), 4.2), sharey=True, squeeze=False)
    width = 0.2
    x = np.arange(len(a["mixers"]))
    for ax, inter in zip(axes[0], inters):
        s = summary[inter]
        for j, (n, tag) in enumerate([(n, t) for n in sizes for t in ("aug", "noaug")]):
            m = [s["by_size"][n]["policies"][f"adbcq-{mx}-{tag}"]["mean"] for mx in a["mixers"]]
            sd = [s["by_size"][n]["policies"][f"adbcq-{mx}-{tag}"]["sd"] or 0.0 for mx in a["mixers"]]
            ax.bar(x + (j - 1.5) * width, m, width, yerr=np.array(sd) / np.sqrt(len(a["seeds"])),
                   label=f"N={n}, {'aug' if tag == 'aug' else 'no aug'}", alpha=0.85)
        ax.axhline(s["clinician"]["value"], color="black", lw=1, label="clinician")
        ax.set_xticks(x, a["mixers"])
        ax.set_title(f"interaction = {inter}")
        ax.grid(alpha=0.3, axis="y")
        lo = min(s["clinician"]["value"], *(s["by_size"][n]["policies"][k]["mean"] for n in sizes
                                             for k in s["by_size"][n]["policies"]))
        ax.set_ylim(lo - 8, None)
    axes[0][0].set_ylabel("true value (100 x survival)")
    axes[0][0].legend(fontsize=8, loc="lower right")
    fig.suptitle("Mixer ablation: AD-BCQ true value by mixer (mean over seeds, bar: +-1 SE)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_md(summary: dict, cells: list[dict], a: dict, meta: dict) -> str:
    import numpy as np

    f1 = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    L = ["# Sample efficiency (E1) and mixer ablation (E2) against the simulator's truth", "",
         f"`{meta['command']}` on {meta['host']} ({meta['cores']} cores), {meta['date']}; the cells took "
         f"{sum(c['seconds']['total'] for c in cells) / 60:.0f} worker-minutes in all (this invocation "
         f"{meta['wall_min']:.0f} min wall; cells cached in the work directory are reused).",
         "",
         f"World: {a['stays']} simulated ICU stays per interaction value (synthetic seed 0), through the real "
         "synthesize, ingest and cohort stages; cohort split 80/10/10. Per cell (interaction x seed x N): N "
         "training stays drawn from the train split (each seed redraws; nested within a seed), AIS refitted on "
         "them (the same update budget at every N: epochs and patience scaled up where N < 1,000 gives fewer than 8 "
         "batches per epoch), dynamics ensemble fitted, then one run per learner with the same settings "
         f"(tau = {a['tau']}, {a['steps']} steps, batch {meta['batch_size']}, seed = cell seed); the final "
         f"checkpoint is scored. True value: 100 x survival over {a['patients']} new simulated septic patients, "
         "the same patients and noise for every policy (common random numbers), acting through the cohort "
         "featuriser and the cell's AIS encoder. Paired differences are over seeds (t-interval, 95%)."
         + (f" Dynamics model overrides: {a['dynamics']}." if a.get("dynamics") else ""), ""]
    for inter in [str(i) for i in a["interactions"]]:
        s = summary[inter]
        mb_on, mb_off = best_mixer(summary, inter, a, True), best_mixer(summary, inter, a, False)
        keys = ["bcq", "factored_bcq", "adbcq-linear-aug", f"adbcq-{mb_on}-aug", f"adbcq-{mb_off}-noaug"]
        keys = list(dict.fromkeys(keys))
        c, nt = s["clinician"], s["no_treatment"]
        L += [f"## interaction = {inter}", "",
              f"Clinician {c['value']:.1f} (SE {c['se']:.1f}); no treatment {nt['value']:.1f}. Best mixer by mean "
              f"true value: with augmentation `{mb_on}`, without `{mb_off}` (an oracle pick among five; `linear` "
              "with augmentation is the pre-specified headline).", "",
              "| N | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        for n in a["sizes"]:
            P = s["by_size"][n]["policies"]
            L.append(f"| {n} | " + " | ".join(f"{P[k]['mean']:.1f} ({f1(P[k]['sd'])})" for k in keys) + " |")
        L += ["", "Mean (SD over seeds). Paired differences, mean [95% CI over seeds]:", "",
              "| N | headline - BCQ | headline - factored BCQ | best aug - BCQ | best aug - factored | "
              "aug - no aug (linear) | headline - clinician |", "|---|---|---|---|---|---|---|"]
        for n in a["sizes"]:
            P = s["by_size"][n]["policies"]
            v = lambda k: P[k]["values"]  # noqa: E731
            cv = [c["value"]] * len(v("bcq"))
            parts = [paired(v("adbcq-linear-aug"), v("bcq")), paired(v("adbcq-linear-aug"), v("factored_bcq")),
                     paired(v(f"adbcq-{mb_on}-aug"), v("bcq")), paired(v(f"adbcq-{mb_on}-aug"), v("factored_bcq")),
                     paired(v("adbcq-linear-aug"), v("adbcq-linear-noaug")), paired(v("adbcq-linear-aug"), cv)]
            L.append(f"| {n} | " + " | ".join(
                f"{m:+.1f}" + ("" if ci is None else f" [{ci[0]:+.1f}, {ci[1]:+.1f}]") for m, ci in parts) + " |")
        L += ["", "Mixer ablation (mean over seeds; aug / no aug):", "",
              "| N | " + " | ".join(a["mixers"]) + " |", "|---|" + "---|" * len(a["mixers"])]
        for n in a["sizes"]:
            P = s["by_size"][n]["policies"]
            L.append(f"| {n} | " + " | ".join(f"{P[f'adbcq-{m}-aug']['mean']:.1f} / {P[f'adbcq-{m}-noaug']['mean']:.1f}"
                                             for m in a["mixers"]) + " |")
        at = [x for x in cells if x["interaction"] == float(inter)]
        L += ["", "What the greedy policies do on the validation decisions (mean over seeds): agreement with the "
              "clinicians, share of decisions with no fluid, share with a vasopressor:", "",
              "| N | policy | agreement | no fluid | vasopressor |", "|---|---|---|---|---|"]
        for n in (a["sizes"][0], a["sizes"][-1]):
            cc = [x for x in at if x["n_train"] == n]
            prof = lambda k, f: float(np.mean([f(x["runs"][k]["actions"]) for x in cc]))  # noqa: E731
            L.append(f"| {n} | clinician | 1 | {prof('bcq', lambda p: p['clinician_fluid'][0]):.2f} | "
                     f"{prof('bcq', lambda p: 1 - p['clinician_vaso'][0]):.2f} |")
            for k in dict.fromkeys(keys + ["adbcq-linear-noaug"]):
                L.append(f"| {n} | {k} | {prof(k, lambda p: p['agree']):.2f} | {prof(k, lambda p: p['fluid'][0]):.2f} | "
                         f"{prof(k, lambda p: 1 - p['vaso'][0]):.2f} |")
        L += ["", "Cell diagnostics (mean over seeds): AIS val NLL vs carry-forward, dynamics val dz R^2, termination "
              "AUROC, learned interaction index I:", "", "| N | transitions | AIS val NLL | carry-forward | dz R^2 | "
              "term AUROC | I | cell minutes |", "|---|---|---|---|---|---|---|---|"]
        for n in a["sizes"]:
            cc = [x for x in at if x["n_train"] == n]
            mean = lambda f: float(np.mean([f(x) for x in cc]))  # noqa: E731
            L.append(f"| {n} | {mean(lambda x: x['n_train_transitions']):.0f} | {mean(lambda x: x['ais']['val_nll']):.3f} | "
                     f"{mean(lambda x: x['ais']['naive_val_nll']):.3f} | {mean(lambda x: x['dynamics']['ensemble/dz_r2']):.3f} | "
                     f"{mean(lambda x: x['dynamics']['ensemble/term_auroc']):.3f} | "
                     f"{mean(lambda x: x['dynamics']['interaction_index']):.3f} | {mean(lambda x: x['seconds']['total']) / 60:.1f} |")
        L.append("")
    L += ["![true value against N](sample_efficiency.png)", "", "![mixer ablation](mixer_ablation.png)", ""]
    return "\n".join(L)


def executor_params(kind: str | None, address: str | None):
    """params.yaml's ``executor`` block, with ``--executor`` / ``--address`` on top (a bad value named, no traceback)."""
    import yaml

    from adrl.config import validate_config
    from adrl.errors import AdrlError

    raw = (yaml.safe_load((ROOT / "params.yaml").read_text()) or {}).get("executor") or {}
    if kind is not None:
        raw["kind"] = kind
    if address is not None:
        raw["address"] = address
    try:
        params = validate_config({"executor": raw}).executor
        if params.kind == "ray":   # before any world is built: Ray missing is said at once
            from adrl.executor import _import_ray

            _import_ray("executor")
    except AdrlError as e:
        raise SystemExit(f"exp_sample_efficiency: {e}") from None
    return params


def run_grid(worlds: dict, jobs: list[tuple], a: dict, work: Path, executor, workers: int,
             on_cell=None) -> tuple[list[dict], dict, str]:
    """Every cell of ``jobs`` (world label, seed, N) and each world's clinician roll-outs, as units of ``executor``
    (ExecutorParams): (cells in the order they finished, {world: clinician values}, where the units ran)."""
    from adrl.executor import make_executor

    ctx = mp.get_context("spawn")
    cells, clin = [], {}
    with make_executor(executor, workers, modules=(ROOT / "benchmarks",), mp_context=ctx) as ex:
        for w in a["worlds"]:
            ex.submit(("clinician", w), f"clinician roll-outs world {w}", clinician_value, worlds[w], a, work)
        for w, s, n in jobs:
            ex.submit(("cell", (w, s, n)), f"cell world {w} seed {s} N {n}", run_cell, str(worlds[w]), w, s,
                      n, a, str(work / "cells" / (worlds[w].name.replace("world-", "") + f"-s{s}-n{n}")))
        while ex.pending:
            for (kind, key), res in ex.wait_any():
                if kind == "clinician":
                    clin[key] = res
                    if on_cell:
                        on_cell(None, clin)
                else:
                    cells.append(res)
                    if on_cell:
                        on_cell(res, clin)
        where = f"{ex.kind} executor, {ex.where()}"
    return cells, clin, where


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--interactions", type=float, nargs="+", default=[0.0, 1.0])
    ap.add_argument("--confounders", type=float, nargs="+", default=[],
                    help="with --arms: also a world with interaction 0 and this hidden-confounder strength (synth.confounder)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[125, 250, 500, 1000])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--stays", type=int, default=6000, help="simulated ICU stays per world")
    ap.add_argument("--patients", type=int, default=1000, help="simulated patients per roll-out")
    ap.add_argument("--rollout-seed", type=int, default=777)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--checkpoints", type=int, default=10, help="with --arms: checkpoints per run (FQE selects one)")
    ap.add_argument("--tau", type=float, default=0.3)
    ap.add_argument("--mixers", nargs="+", default=list(MIXERS))
    ap.add_argument("--dynamics-layers", type=int, help="override train.dynamics.layers")
    ap.add_argument("--dynamics-skip", choices=["true", "false"], help="override train.dynamics.linear_skip")
    ap.add_argument("--arms", nargs="+", help="named arms instead of the default set (see above)")
    ap.add_argument("--workers", type=int, default=2, help="local executor: processes")
    ap.add_argument("--executor", choices=["local", "ray"], help="where the cells run (default: params.yaml executor)")
    ap.add_argument("--address", help="ray: the head node's host:port, or auto (default: params.yaml executor)")
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "adrl-exp-sample-efficiency")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--name", default="sample_efficiency_arms",
                    help="with --arms: the results' file name in --out (<name>.json, <name>.md); arms already in it "
                         "with the same settings are reused and this run's results are merged into it (other worlds, "
                         "sizes, seeds or arms add to it), so a run can continue one recorded earlier; a file with "
                         "runs of other settings (steps, tau, patients, ...) stops the run before any work")
    args = ap.parse_args(argv)
    args.work = args.work.resolve()   # the cells get absolute paths (a Ray worker runs in a folder of its own)
    executor = executor_params(args.executor, args.address)
    if args.confounders and not args.arms:
        raise SystemExit("--confounders: only with --arms (the default set's tables are per interaction)")
    wp = {world_label(i): (float(i), 0.0) for i in args.interactions}
    wp |= {world_label(0.0, c): (0.0, float(c)) for c in args.confounders if c}
    a = {"interactions": args.interactions, "worlds": list(wp), "world_params": wp, "sizes": sorted(args.sizes),
         "seeds": args.seeds, "stays": args.stays, "checkpoints": args.checkpoints,
         "patients": args.patients, "rollout_seed": args.rollout_seed, "steps": args.steps, "tau": args.tau,
         "mixers": args.mixers, "dynamics": {k: v for k, v in (("layers", args.dynamics_layers),
                                                                 ("linear_skip", None if args.dynamics_skip is None
                                                                  else args.dynamics_skip == "true"))
                                             if v is not None}}
    recorded_file = args.out / f"{args.name}.json"
    recorded = None
    if args.arms:
        for name in args.arms:
            parse_arm(name, args.tau, 0)   # a bad name stops here, before any world is built
        a["arms"] = list(dict.fromkeys(args.arms))
        if recorded_file.exists():
            try:
                recorded = json.loads(recorded_file.read_text())
            except json.JSONDecodeError as e:
                raise SystemExit(f"{recorded_file}: not JSON ({e}); move it away to start afresh") from None
            a["recorded"] = recorded.get("cells") or []
            key = arm_key(a)
            other = sum(r.get("key") != key for c in a["recorded"] for r in (c.get("runs") or {}).values())
            if other:   # the file is rewritten with this run's results merged in: it must not lose those runs
                raise SystemExit(f"{recorded_file}: {other} recorded runs were trained with other settings than "
                                 f"these ({', '.join(f'{k} {v}' for k, v in key.items())}); give this run another "
                                 "--name or --out")
    load_start = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    t0 = time.time()
    args.work.mkdir(parents=True, exist_ok=True)
    worlds = {w: build_world(args.work, i, args.stays, c) for w, (i, c) in wp.items()}
    order = {w: k for k, w in enumerate(wp)}
    jobs = [(w, seed, n) for w in wp for seed in args.seeds for n in a["sizes"]]
    if args.arms:   # seed by seed (each seed a whole curve; partial results pair), larger cells first within one
        jobs.sort(key=lambda j: (order[j[0]], args.seeds.index(j[1]), -j[2]))
    else:
        jobs.sort(key=lambda j: -j[2])  # largest cells first: better packing on the workers
    done = []
    from adrl.config import load_config
    first = load_config(worlds[a["worlds"][0]] / "params.yaml").train

    def meta_now() -> dict:
        return {"command": "python -m benchmarks.exp_sample_efficiency " + " ".join(sys.argv[1:] if argv is None
                                                                                   else argv),
                "host": platform.node(), "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M"),
                "wall_min": (time.time() - t0) / 60, "batch_size": first.batch_size, "profile": first.profile,
                "load_start": load_start, "load_end": ", ".join(f"{x:.1f}" for x in os.getloadavg()),
                "cells_total": len(jobs)}

    def write_arms(cells: list[dict], clin: dict) -> str:
        meta = meta_now() | {"cells_done": len(cells)}
        if recorded:   # the runs recorded before, newest last
            old = recorded.get("meta") or {}
            meta["earlier"] = (old.get("earlier") or []) + [{k: old[k] for k in ("command", "date", "wall_min")
                                                             if k in old}]
        cells, wide, clin = merge_recorded(recorded, cells, clin, a)
        summary = summarise(cells, clin, wide)
        rec = {k: v for k, v in wide.items() if k != "recorded"}
        args.out.mkdir(parents=True, exist_ok=True)
        md = write_md_arms(summary, cells, wide, meta)
        at = {w: k for k, w in enumerate(wide["worlds"])}
        write_json(recorded_file, {"meta": meta, "args": rec, "summary": summary, "cells": sorted(
            cells, key=lambda c: (at.get(cell_world(c), 99), c["seed"], c["n_train"]))})
        tmp = args.out / f".{args.name}.md.tmp"
        tmp.write_text(md)
        tmp.replace(args.out / f"{args.name}.md")
        tmp = args.out / f".{args.name}.tmp.png"
        figure_arms(summary, wide, tmp)
        if tmp.exists():
            tmp.replace(args.out / f"{args.name}.png")
        return md

    def on_cell(c, clin):
        if c is None:
            return
        done.append(c)
        best = max(c["runs"], key=lambda r: c["runs"][r]["value"])
        print(f"[{len(done)}/{len(jobs)}] world {cell_world(c)} seed {c['seed']} N {c['n_train']}: "
              f"{c['seconds']['total']:.0f} s; " + ", ".join(f"{r} {v['value']:.1f}" for r, v in c["runs"].items())
              + f"; best {best}", flush=True)
        if a.get("arms"):   # the results so far, after every cell: a killed run loses nothing finished
            write_arms(done, clin)

    from adrl.errors import AdrlError

    try:
        cells, clin, where = run_grid(worlds, jobs, a, args.work, executor, args.workers, on_cell)
    except AdrlError as e:   # Ray not installed, a head node that does not answer, a unit that failed every attempt
        raise SystemExit(f"exp_sample_efficiency: {e}") from None
    print(f"cells: {where}", flush=True)   # how many units ran where
    if a.get("arms"):
        print(write_arms(cells, clin))
        return
    summary = summarise(cells, clin, a)
    meta = meta_now()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sample_efficiency.json").write_text(json.dumps(
        {"meta": meta, "args": a, "summary": summary, "cells": sorted(cells, key=lambda c: (c["interaction"], c["seed"],
                                                                                             c["n_train"]))},
        indent=1, default=float) + "\n")
    figure_curves(summary, a, args.out / "sample_efficiency.png")
    figure_mixers(summary, a, args.out / "mixer_ablation.png")
    md = write_md(summary, cells, a, meta)
    (args.out / "sample_efficiency.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
