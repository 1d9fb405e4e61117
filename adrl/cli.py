"""The `adrl` command: what users do.

    adrl repro [dvc repro args]   run the pipeline (dvc repro) under one MLflow parent run
    adrl ui [--port N]            the MLflow UI on 127.0.0.1
    adrl check-params             validate params.yaml and print the effective cohort settings
    adrl show                     the last test table (WIS, ESS, FQE, WDR, CIs, true value, flags)
    adrl apply --states F --out O [--policy adbcq]
                                  apply a selected policy to a states file (the states contract): greedy
                                  actions and the probabilities of all 25 actions per row
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .errors import AdrlError


def _dvc() -> str:
    exe = Path(sys.executable).parent / "dvc"
    return str(exe) if exe.exists() else (shutil.which("dvc") or "dvc")


PUSH_HINT = "Use `dvc push` to send your updates to remote storage."


def _dvc_repro(dvc_args: list[str], env: dict) -> int:
    """`dvc repro`, its output passed through line by line; without a DVC remote, DVC's advice to
    `dvc push` is dropped (there is nowhere to push to)."""
    remotes = subprocess.run([_dvc(), "remote", "list"], capture_output=True, text=True, env=env).stdout.strip()
    p = subprocess.Popen([_dvc(), "repro", *dvc_args], env=env, stdout=subprocess.PIPE, text=True, bufsize=1)
    assert p.stdout is not None
    for line in p.stdout:
        if remotes or line.strip() != PUSH_HINT:
            sys.stdout.write(line)
            sys.stdout.flush()
    return p.wait()


def cmd_repro(args: argparse.Namespace) -> int:
    from . import tracking
    from .config import load_config

    load_config()  # a bad params.yaml stops here, before DVC starts
    tracking.quiet_env()
    name = f"pipeline {time.strftime('%Y-%m-%d %H:%M:%S')}"
    # the first stage that runs opens the parent run (with the parameters); nothing runs, nothing is opened
    with tracking.pipeline_run(name) as tree:
        # the stages run `python -m pipeline.<stage>`: make it this environment's python, even when the
        # environment is not activated (e.g. `.venv/bin/adrl repro`)
        env = dict(os.environ)
        env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
        rc = _dvc_repro(args.dvc_args, env)
        run = tree.run()
        if run is None:
            return rc
        tree.status = "FINISHED" if rc == 0 else "FAILED"
        run.set_tags({"adrl.dvc_repro_exit": rc})
        if rc == 0:
            for p in sorted(Path("reports/metrics").glob("*.json")) if Path("reports/metrics").exists() else []:
                run.log_artifact(p, "metrics")
            if Path("reports/report.html").exists():
                run.log_artifact("reports/report.html", "report")
    return rc


def cmd_ui(args: argparse.Namespace) -> int:
    from . import tracking

    cmd = tracking.ui_command(args.port)
    exe = Path(sys.executable).parent / "mlflow"
    if exe.exists():
        cmd[0] = str(exe)
    print(f"MLflow UI on http://127.0.0.1:{args.port}  (store {tracking.tracking_uri()})", flush=True)
    if tracking.enabled():
        print(f"the pipeline's runs: {tracking.runs_url(args.port)}", flush=True)
    return subprocess.call(cmd)


def cmd_check_params(args: argparse.Namespace) -> int:
    from .config import load_config

    cfg = load_config(args.params)
    print(json.dumps({"source": cfg.source.model_dump(), "synth_stays": cfg.synth.stays,
                      "cohort": cfg.cohort.resolved()}, indent=2))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from .errors import InputError

    path = Path(args.table)
    if not path.exists():
        raise InputError(f"{path}: no results yet (run `adrl repro`)")
    table = json.loads(path.read_text())

    def f(v, fmt="{:.2f}"):
        return "-" if v is None else fmt.format(v)

    def ci(c, note=None):
        if note:
            return "not estimable"
        return "-" if not c or c[0] is None else f"({c[0]:.1f}, {c[1]:.1f})"

    head = (f"{'policy':<14}{'WIS':>8} {'95% CI':>15}{'ESS':>9}{'FQE':>8} {'95% CI':>15}{'WDR':>8}{'agree':>8}"
            f"{'true':>8}{'+-SE':>7}  flags")
    print(head)
    print("-" * len(head))
    for r in table["rows"]:
        flags = "; ".join(r.get("flags") or []) if r["policy"] != "clinician" else ""
        if r["policy"] != "clinician" and "flags" in r and not r["flags"]:
            flags = "none (champion)"
        print(f"{r['policy']:<14}{f(r.get('wis')):>8} {ci(r.get('wis_ci'), r.get('wis_ci_note')):>15}"
              f"{f(r.get('ess'), '{:.1f}'):>9}{f(r.get('fqe')):>8} {ci(r.get('fqe_ci')):>15}{f(r.get('wdr')):>8}"
              f"{f(r.get('agreement'), '{:.3f}'):>8}{f(r.get('true_value')):>8}{f(r.get('true_value_se')):>7}"
              f"  {flags}")
    if any(r.get("flagged") for r in table["rows"]):
        print("\nflagged policies are registered but never get the alias `champion`")
    print(f"\nfrom {path}; the full report: reports/report.html")
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from .actions import N_ACTIONS, from_flat
    from .errors import InputError
    from .io import write_parquet
    from .rl.policy import Policy
    from .schemas import infer_latent_dim

    sel_path = Path(args.selected)
    if not sel_path.exists():
        raise InputError(f"{sel_path}: no selected policies yet (run `adrl repro`)")
    selected = json.loads(sel_path.read_text())
    if args.policy not in selected:
        raise InputError(f"--policy {args.policy}: not among the selected policies {sorted(selected)}")
    c = selected[args.policy]
    pol = Policy.load(Path(args.models) / "runs" / c["run_id"], step=c["step"])
    states_path = Path(args.states)
    if not states_path.exists():
        raise InputError(f"{states_path}: states file not found")
    df = pd.read_parquet(states_path)
    d = infer_latent_dim(df.columns)
    z = df[[f"z_{i}" for i in range(d)]].to_numpy(np.float32)
    a = pol.greedy(z)
    fb, vb = from_flat(a)
    out = pd.DataFrame({k: df[k] for k in ("icustay_id", "step") if k in df.columns})
    out["action"], out["fluid_bin"], out["vaso_bin"] = a.astype(np.int8), fb.astype(np.int8), vb.astype(np.int8)
    probs = pol.action_probs(z)
    for j in range(N_ACTIONS):
        out[f"p_{j}"] = probs[:, j].astype(np.float32)
    write_parquet(args.out, out)
    print(f"{args.policy} ({c['run_id']} step {c['step']}): {len(out)} rows -> {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    p = argparse.ArgumentParser(prog="adrl", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("repro", help="run the pipeline (dvc repro) under one MLflow parent run")
    r.add_argument("dvc_args", nargs=argparse.REMAINDER, help="passed to dvc repro")
    r.set_defaults(fn=cmd_repro)
    u = sub.add_parser("ui", help="start the MLflow UI on 127.0.0.1")
    u.add_argument("--port", type=int, default=5000)
    u.set_defaults(fn=cmd_ui)
    c = sub.add_parser("check-params", help="validate params.yaml")
    c.add_argument("--params", default=None)
    c.set_defaults(fn=cmd_check_params)
    sh = sub.add_parser("show", help="print the last test table")
    sh.add_argument("--table", default="reports/metrics/test_table.json")
    sh.set_defaults(fn=cmd_show)
    ap = sub.add_parser("apply", help="apply a selected policy to a states file")
    ap.add_argument("--states", required=True, help="parquet file in the states contract (z_0..z_{d-1})")
    ap.add_argument("--out", required=True, help="output parquet: ids, action, fluid_bin, vaso_bin, p_0..p_24")
    ap.add_argument("--policy", default="adbcq", help="bcq | factored_bcq | adbcq | a variant in selected.json")
    ap.add_argument("--selected", default="reports/selected.json")
    ap.add_argument("--models", default="models/train")
    ap.set_defaults(fn=cmd_apply)
    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except AdrlError as e:
        print(f"adrl: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
