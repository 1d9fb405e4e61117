"""Benchmark of the `encode` stage (AIS encoder): seconds per epoch and total time.

    python -m benchmarks.bench_ais                 # everything below (about 15-25 min on 2 shared cores)
    python -m benchmarks.bench_ais --quick         # thread probe and default profile only

1. Thread probe: seconds per epoch on a MIMIC-scale fake cohort (20,000 stays x 2..18 steps, 70/15/15
   split) for each torch thread count, a few epochs each.
2. MIMIC-scale run with the default params.yaml `ais` block: total fit time, epochs, best epoch, validation
   NLL against carry-forward, and the time to encode all stays.
3. Default-profile runs (1,000 and 3,000 stays) with the default `ais` block: total encode time.

Writes benchmarks/results/ais.md (and ais.json). The cohort is adrl.ais.synthetic.fake_trajectories, so
the learning curve is that of a linear-Gaussian toy, not MIMIC; timings depend on stay count and length only.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import torch  # noqa: E402

from adrl.ais.params import AisParams  # noqa: E402
from adrl.ais.synthetic import fake_trajectories  # noqa: E402
from adrl.ais.train import fit_encoder, torch_settings  # noqa: E402
from adrl.config import load_config  # noqa: E402

OUT = Path(__file__).resolve().parent / "results"


def load_avg() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def default_ais() -> AisParams:
    root = Path(__file__).resolve().parent.parent
    return load_config(root / "params.yaml").ais


def timed_fit(df, params: AisParams) -> dict:
    t0 = time.time()
    fit = fit_encoder(df, params, progress=False)
    t_fit = time.time() - t0
    t1 = time.time()
    with torch_settings(params.threads):
        states = fit.encoder.encode_trajectories(df)
    t_enc = time.time() - t1
    m = fit.metrics
    return {"fit_seconds": t_fit, "encode_seconds": t_enc, "total_seconds": t_fit + t_enc,
            "seconds_per_epoch": m["seconds_per_epoch"], "epochs_run": m["epochs_run"], "best_epoch": m["best_epoch"],
            "val_nll": m["val_nll"], "naive_val_nll": m["naive_val_nll"], "rows": len(states),
            "n_stays": m["n_stays"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stays", type=int, default=20_000)
    ap.add_argument("--max-len", type=int, default=18)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--probe-epochs", type=int, default=3)
    ap.add_argument("--profile-stays", default="1000,3000")
    ap.add_argument("--quick", action="store_true", help="skip the full MIMIC-scale run")
    args = ap.parse_args()

    base = default_ais()
    res: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                             "load_avg_start": load_avg()}, "default_ais": base.model_dump()}
    t0 = time.time()
    big = fake_trajectories(args.stays, max_len=args.max_len, seed=0)
    res["cohort"] = {"stays": args.stays, "rows": len(big), "max_len": args.max_len,
                     "make_seconds": time.time() - t0}
    print(f"fake cohort: {args.stays} stays, {len(big)} rows ({time.time() - t0:.1f} s); load {load_avg()}", flush=True)

    probe = []
    for th in [int(x) for x in args.threads.split(",")]:
        p = base.model_copy(update={"threads": th, "max_epochs": args.probe_epochs, "patience": 10_000})
        r = timed_fit(big, p)
        probe.append({"threads": th, "seconds_per_epoch": r["seconds_per_epoch"],
                      "encode_seconds": r["encode_seconds"], "load_avg": load_avg()})
        print(f"threads={th}: {r['seconds_per_epoch']:.2f} s/epoch, encode {r['encode_seconds']:.1f} s", flush=True)
    res["thread_probe"] = probe

    if not args.quick:
        r = timed_fit(big, base)
        r["load_avg_end"] = load_avg()
        res["mimic_scale_default"] = r
        print(f"MIMIC scale, default params: {r}", flush=True)

    prof = []
    for n in [int(x) for x in args.profile_stays.split(",") if x]:
        df = fake_trajectories(n, max_len=args.max_len, seed=1)
        r = timed_fit(df, base)
        r["stays"] = n
        prof.append(r)
        print(f"{n} stays, default params: {r}", flush=True)
    res["default_profile"] = prof
    res["machine"]["load_avg_end"] = load_avg()
    res["wall_seconds"] = time.time() - t0

    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "ais.json").write_text(json.dumps(res, indent=2) + "\n")
    (OUT / "ais.md").write_text(render(res, args))
    print(f"wrote {OUT / 'ais.md'}")


def render(res: dict, args) -> str:
    m = res["machine"]
    b = res["default_ais"]
    lines = [
        "# `encode` (AIS encoder) benchmark",
        "",
        f"Command: `python -m benchmarks.bench_ais{' --quick' if args.quick else ''}` "
        f"(written by benchmarks/bench_ais.py). Machine: {m['cpus']} CPUs, shared with other jobs "
        f"(load average 1/5/15 min at start {m['load_avg_start']}, at end {m['load_avg_end']}); "
        f"torch {m['torch']}; {m['platform']}.",
        "",
        f"Default `ais` block: {b['rnn']}, d={b['latent_dim']}, hidden {b['hidden']}, lr {b['lr']}, "
        f"batch {b['batch_size']} stays, max_epochs {b['max_epochs']}, patience {b['patience']}, threads {b['threads']}.",
        f"Fake cohort (adrl.ais.synthetic): {res['cohort']['stays']:,} stays, {res['cohort']['rows']:,} rows "
        f"(lengths 2..{res['cohort']['max_len']}), split 70/15/15.",
        "",
        "## Thread setting (MIMIC scale, seconds per epoch incl. validation pass)",
        "",
        "| torch threads | s / epoch | encode all stays (s) | load avg |",
        "|---|---|---|---|",
    ]
    for r in res["thread_probe"]:
        lines.append(f"| {r['threads']} | {r['seconds_per_epoch']:.2f} | {r['encode_seconds']:.1f} | {r['load_avg']} |")
    if "mimic_scale_default" in res:
        r = res["mimic_scale_default"]
        lines += ["", "## MIMIC scale, default parameters", "",
                  "| stays (train/val/test) | epochs run | best epoch | s / epoch | fit (s) | encode (s) | total (s) "
                  "| val NLL | carry-forward NLL |",
                  "|---|---|---|---|---|---|---|---|---|",
                  _row(r)]
    lines += ["", "## Default profile (encode stage on 1,000-3,000 stays, default parameters)", "",
              "| stays (train/val/test) | epochs run | best epoch | s / epoch | fit (s) | encode (s) | total (s) "
              "| val NLL | carry-forward NLL |",
              "|---|---|---|---|---|---|---|---|---|"]
    lines += [_row(r) for r in res["default_profile"]]
    lines += ["", "The method profile of method.md 2.3 (max_epochs 1000, patience 50) costs at most "
              "1000 x the seconds per epoch above; set `ais.max_epochs: 1000, ais.patience: 50` in params.yaml.", ""]
    return "\n".join(lines)


def _row(r: dict) -> str:
    s = r["n_stays"]
    return (f"| {s['train']:,}/{s['val']:,}/{s['test']:,} | {r['epochs_run']} | {r['best_epoch']} | "
            f"{r['seconds_per_epoch']:.2f} | {r['fit_seconds']:.0f} | {r['encode_seconds']:.1f} | "
            f"{r['total_seconds']:.0f} | {r['val_nll']:.3f} | {r['naive_val_nll']:.3f} |")


if __name__ == "__main__":
    main()
