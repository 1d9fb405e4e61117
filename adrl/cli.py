"""The `adrl` command: what users do.

    adrl repro [dvc repro args]   run the pipeline (dvc repro) under one MLflow parent run
    adrl ui [--port N]            the MLflow UI on 127.0.0.1
    adrl check-params             validate params.yaml and print the effective cohort settings
    adrl show                     the last test table (WIS, ESS, FQE, WDR, CIs, true value, flags)
    adrl apply --states F --out O [--policy adbcq | --run RUN [--checkpoint STEP]]
                                  apply a selected (or any trained) policy to a states file: the Q value and
                                  the allowed mask of all 25 actions and the greedy action per decision row
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
    return supervise(cmd)


def _child_dies_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM when this process dies, even by SIGKILL (Linux PR_SET_PDEATHSIG)."""
    import signal

    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _group_alive(pgid: int, leader: subprocess.Popen) -> bool:
    """Does a process of the group still run? (Zombies waiting to be reaped do not count.)"""
    leader.poll()                                   # reap our own child
    proc = Path("/proc")
    if proc.is_dir():
        for p in proc.iterdir():
            if p.name.isdigit():
                try:
                    raw = (p / "stat").read_text()
                except OSError:
                    continue
                state, _ppid, pgrp = raw[raw.rindex(")") + 2:].split()[:3]
                if int(pgrp) == pgid and state != "Z":
                    return True
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop_group(leader: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM to every process of the leader's group, SIGKILL to what is left after ``grace`` seconds."""
    import signal

    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(leader.pid, sig)
        except ProcessLookupError:
            return
        t0 = time.time()
        while time.time() - t0 < wait:
            if not _group_alive(leader.pid, leader):
                return
            time.sleep(0.1)


def supervise(cmd: list[str]) -> int:
    """Run ``cmd`` in its own process group and stop the whole group (it and its children, e.g. the MLflow
    server's workers) when this process ends or receives SIGTERM, SIGINT or SIGHUP."""
    import signal

    proc = subprocess.Popen(cmd, start_new_session=True, preexec_fn=_child_dies_with_parent)
    got: list[int] = []

    def forward(signum, frame):
        got.append(signum)

    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    old = {s: signal.signal(s, forward) for s in handled}
    try:
        while proc.poll() is None and not got:
            try:
                proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
    finally:
        _stop_group(proc)
        proc.wait()
        for s, h in old.items():
            signal.signal(s, h)
    return 128 + got[0] if got else proc.returncode


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


def _apply_policy(args: argparse.Namespace):
    """The policy `adrl apply` uses: --run (any trained run) or --policy (a selected one); --checkpoint: a step."""
    from .errors import InputError
    from .rl.policy import Policy

    if args.run is not None:
        if args.policy is not None:
            raise InputError("--run and --policy: give one (--run applies any trained run, --policy a selected one)")
        run_dir = Path(args.run)
        if not (run_dir / "run.json").exists():
            run_dir = Path(args.models) / "runs" / args.run
        if not (run_dir / "run.json").exists():
            raise InputError(f"--run {args.run}: no training run there or in {Path(args.models) / 'runs'} "
                             "(a run id from models/train/runs.json, or a run directory)")
        pol = Policy.load(run_dir, step=args.checkpoint)
        return pol, f"run {pol.record.get('run_id', run_dir.name)} step {pol.step}"
    name = args.policy or "adbcq"
    sel_path = Path(args.selected)
    if not sel_path.exists():
        raise InputError(f"{sel_path}: no selected policies yet (run `adrl repro`, or give --run)")
    selected = json.loads(sel_path.read_text())
    if name not in selected:
        raise InputError(f"--policy {name}: not among the selected policies {sorted(selected)}")
    c = selected[name]
    step = c["step"] if args.checkpoint is None else args.checkpoint
    pol = Policy.load(Path(args.models) / "runs" / c["run_id"], step=step)
    return pol, f"{name} (run {c['run_id']} step {pol.step})"


def decision_rows(df, where: str):
    """(N,) bool: the rows where a decision is taken. A stay's last row takes none: from the `last` column, else
    from the last `step` of each stay (`icustay_id` or `traj`), else every row (no stay information)."""
    import numpy as np

    from .errors import InputError

    if "last" in df.columns:
        if not (df["last"].dtype == bool or str(df["last"].dtype) == "boolean") or df["last"].isna().any():
            raise InputError(f"{where}: column 'last' must be boolean (True on a stay's last row), "
                             f"got {df['last'].dtype}")
        return ~df["last"].to_numpy(bool), "the 'last' column"
    stay = next((c for c in ("icustay_id", "traj") if c in df.columns), None)
    if stay is not None and "step" in df.columns:
        mx = df.groupby(stay)["step"].transform("max")
        return (df["step"] != mx).to_numpy(bool), f"the last step of each {stay}"
    return np.ones(len(df), bool), None


def cmd_apply(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from .actions import N_ACTIONS, from_flat
    from .io import write_parquet
    from .rl.data import check_state_columns, read_states_file
    from .schemas import z_columns

    pol, what = _apply_policy(args)
    where = str(args.states)
    df = read_states_file(args.states)
    d = check_state_columns(df, where)
    if pol.d is not None and d != pol.d:
        from .errors import InputError

        raise InputError(f"{where}: has z_0..z_{d - 1} (d={d}), the policy was trained on d={pol.d}")
    live, how = decision_rows(df, where)
    z = df[z_columns(d)].to_numpy(np.float32)
    q = np.full((len(df), N_ACTIONS), np.nan, np.float32)
    allowed = np.zeros((len(df), N_ACTIONS), bool)
    action = np.full(len(df), -1, np.int64)
    if live.any():
        qv, mask = pol.q_and_mask(z[live])
        q[live], allowed[live] = qv, mask
        action[live] = pol.greedy(z[live])
    fb, vb = from_flat(np.where(live, action, 0))
    out = pd.DataFrame({k: df[k] for k in ("subject_id", "icustay_id", "traj", "step") if k in df.columns})
    out["decision_row"] = live
    out["action"] = action.astype(np.int8)
    out["fluid_bin"] = np.where(live, fb, -1).astype(np.int8)
    out["vaso_bin"] = np.where(live, vb, -1).astype(np.int8)
    for j in range(N_ACTIONS):
        out[f"q_{j}"] = q[:, j]
    for j in range(N_ACTIONS):
        out[f"allowed_{j}"] = allowed[:, j]
    write_parquet(args.out, out)
    note = f"no decision on {int((~live).sum())} last row(s) ({how})" if how else \
        "no 'last' column or stay ids: every row treated as a decision"
    print(f"{what}: {int(live.sum())} decision(s) of {len(out)} rows -> {args.out}; {note}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="adrl", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("repro", help="run the pipeline (dvc repro) under one MLflow parent run")
    r.add_argument("dvc_args", nargs=argparse.REMAINDER, help="passed to dvc repro")
    r.set_defaults(fn=cmd_repro)
    u = sub.add_parser("ui", help="start the MLflow UI on 127.0.0.1")
    u.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (default 5000)")
    u.set_defaults(fn=cmd_ui)
    c = sub.add_parser("check-params", help="validate params.yaml")
    c.add_argument("--params", default=None, help="the parameters file (default params.yaml or $ADRL_PARAMS)")
    c.set_defaults(fn=cmd_check_params)
    sh = sub.add_parser("show", help="print the last test table")
    sh.add_argument("--table", default="reports/metrics/test_table.json",
                    help="the test table written by the evaluate stage (default %(default)s)")
    sh.set_defaults(fn=cmd_show)
    ap = sub.add_parser("apply", help="apply a trained policy to a states file: Q values, allowed set, greedy action")
    ap.add_argument("--states", required=True,
                    help="Parquet file in the states contract: z_0..z_{d-1} (finite floats); with 'last' (or "
                         "icustay_id/traj and step) no decision is made on a stay's last row")
    ap.add_argument("--out", required=True,
                    help="output Parquet: ids, decision_row, action, fluid_bin, vaso_bin (-1 where no decision), "
                         "q_0..q_24 (the Q value of each joint action, the mixer's value for AD-BCQ; NaN where "
                         "no decision) and allowed_0..allowed_24 (the BCQ-allowed actions)")
    ap.add_argument("--policy", default=None,
                    help="a selected policy of --selected: bcq | factored_bcq | adbcq | a variant (default adbcq)")
    ap.add_argument("--run", default=None,
                    help="apply any trained run instead: a run id of --models (e.g. adbcq-linear-aug-tau0.3-s0) "
                         "or a run directory")
    ap.add_argument("--checkpoint", type=int, default=None,
                    help="checkpoint step of the run (default: the selected step for --policy, the last for --run)")
    ap.add_argument("--selected", default="reports/selected.json",
                    help="the selected policies written by the evaluate stage (default %(default)s)")
    ap.add_argument("--models", default="models/train", help="the train stage's output (default %(default)s)")
    ap.set_defaults(fn=cmd_apply)
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    p = build_parser()
    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except AdrlError as e:
        print(f"adrl: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
