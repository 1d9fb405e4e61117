"""The `adrl` command: what users do.

    adrl repro [dvc repro args]   run the pipeline (dvc repro) under one MLflow parent run
    adrl ui [--port N]            the MLflow UI on 127.0.0.1
    adrl check-params             validate params.yaml and print the effective cohort settings
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


def cmd_repro(args: argparse.Namespace) -> int:
    from . import tracking
    from .config import load_config

    cfg = load_config()
    tracking.quiet_env()
    env_tags = {"adrl.source": cfg.source.kind, "adrl.cohort.recipe": cfg.cohort.recipe,
                "adrl.params_hash": tracking.params_hash(cfg.model_dump())}
    name = f"pipeline {time.strftime('%Y-%m-%d %H:%M:%S')}"
    with tracking.pipeline_run(name, tags=env_tags) as run:
        run.log_params(cfg.model_dump(mode="json"))
        rc = subprocess.call([_dvc(), "repro", *args.dvc_args])
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
    return subprocess.call(cmd)


def cmd_check_params(args: argparse.Namespace) -> int:
    from .config import load_config

    cfg = load_config(args.params)
    print(json.dumps({"source": cfg.source.model_dump(), "synth_stays": cfg.synth.stays,
                      "cohort": cfg.cohort.resolved()}, indent=2))
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
    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except AdrlError as e:
        print(f"adrl: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
