"""Benchmark the synthetic world: generation against read-back, peak memory, and the ground-truth policy table.

Run (from the repo root):
    python benchmarks/bench_synth.py gen [n_stays] [--dir DIR] [--no-read]   # time one size (own process)
    python benchmarks/bench_synth.py policies [n_patients] [--seed S]          # true survival per policy
    python benchmarks/bench_synth.py e2e [n_stays]       # world -> ingest -> cohort recipe vs the simulator's truth
    python benchmarks/bench_synth.py report                                    # -> benchmarks/results/synth.md
Each run stores its figures in benchmarks/work/synth/*.json (git-ignored); `report` assembles them into
benchmarks/results/synth.md.
Peak RSS is the process's own maximum resident set (ru_maxrss), so run one size per process.
"""
import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RES = ROOT / "benchmarks" / "results"          # synth.md
RAW = ROOT / "benchmarks" / "work" / "synth"    # per-run figures (git-ignored), assembled by `report`
WRITER = "arrow-join"  # the writer version a gen run measured (runs before issue 2: "pyarrow.csv")


def gen(a):
    import pandas as pd

    from adrl.synth.params import SynthParams
    from adrl.synth.world import World

    p = SynthParams(profile=a.profile, n_stays=a.stays)
    base = Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix="bench_synth_"))
    out = base / f"raw_{p.stays}"
    if out.exists():
        shutil.rmtree(out)
    t0, c0 = time.time(), time.process_time()
    w = World(p, progress=False)
    t_sim = time.time() - t0
    rows = w.write(out, progress=False)
    t_gen, c_gen = time.time() - t0, time.process_time() - c0
    rss_gen = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size = {f.name: f.stat().st_size for f in out.glob("*.csv.gz")}
    res = {"stays": p.stays, "profile": p.profile, "seed": p.seed, "pass1_simulate_s": round(t_sim, 1),
           "generate_total_s": round(t_gen, 1), "generate_cpu_s": round(c_gen, 1), "chunks": len(w.chunks()),
           "load_1min": round(__import__("os").getloadavg()[0], 1), "peak_rss_generate_mb": round(rss_gen), "rows": rows,
           "bytes": size, "compressed_mb": round(sum(size.values()) / 1e6, 1), "summary": w.summary(),
           "writer": WRITER}
    if not a.no_read:
        t1 = time.time()
        pd.read_csv(out / "CHARTEVENTS.csv.gz")
        res["read_chartevents_s"] = round(time.time() - t1, 1)
        t2, c2 = time.time(), time.process_time()
        for f in sorted(out.glob("*.csv.gz")):
            pd.read_csv(f, low_memory=False)
        res["read_all_s"], res["read_all_cpu_s"] = round(time.time() - t2, 1), round(time.process_time() - c2, 1)
    if not a.keep:
        shutil.rmtree(out)
    (RAW / f"synth_gen_{p.stays}.json").write_text(json.dumps(res, indent=1, default=float))
    print(json.dumps({k: v for k, v in res.items() if k not in ("summary", "bytes")}, indent=1))


def policies(a):
    from adrl.synth.params import SynthParams
    from adrl.synth.policies import REFERENCE
    from adrl.synth.rollout import rollout

    out = {"n": a.n, "seed": a.seed, "by_interaction": {}}
    for inter in (0.0, 1.0):
        p = SynthParams(interaction=inter)
        rows, base = {}, None
        for name, pol in REFERENCE.items():
            t = time.time()
            r = rollout(pol, a.n, a.seed, p, progress=False, events=False)
            surv = 1.0 - r["died"].astype(float)
            if base is None:
                base = surv
            d = surv - base
            rows[name] = {"value": r["value"], "se": r["se"], "diff_vs_clinician": 100 * d.mean(),
                          "diff_se": 100 * d.std(ddof=1) / np.sqrt(a.n), "seconds": round(time.time() - t, 1)}
            print(inter, name, rows[name], flush=True)
        out["by_interaction"][str(inter)] = rows
    (RAW / "synth_policies.json").write_text(json.dumps(out, indent=1))


def e2e(a):
    """World -> adrl.mimic.ingest -> adrl.cohort recipe (other rooms' code, used as is); compare the recipe's
    onset and septic flag with the simulator's truth, stay by stay."""
    from collections import Counter

    import pandas as pd

    from adrl.cohort.build import Flow, build_cohort, population
    from adrl.cohort.mimic_adapter import build_spec
    from adrl.cohort.onset import antibiotics, cultures, onsets
    from adrl.cohort.params import CohortParams
    from adrl.mimic.ingest import ingest
    from adrl.synth.params import SynthParams
    from adrl.synth.world import World
    from pipeline.cohort import load_events

    work = Path(a.dir or tempfile.mkdtemp(prefix="synth_e2e_")) / f"e2e_{a.stays}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    w = World(SynthParams(n_stays=a.stays, seed=a.seed), progress=False)
    w.write(work / "raw", progress=False)
    rep = ingest(work / "raw", work / "events", progress=False)  # missing_items="error": the strict default
    p = CohortParams()
    spec = build_spec(p)
    static, ev, load_chunk = load_events(p, spec, work / "events")
    st = population(static, p, Flow(), spec.facts)
    abx = antibiotics(ev["prescriptions"], st, spec, p.infection.attach_to_icu_h, Counter())
    cul = cultures(ev["microbiologyevents"], ev["chartevents"], ev["procedureevents_mv"], st, spec,
                   p.infection.attach_to_icu_h, Counter())
    on = onsets(abx, cul, p.infection.abx_then_culture_h, p.infection.culture_then_abx_h, p.fix("onset_search"))
    res = build_cohort(static, ev, p, spec, load_chunk=load_chunk, progress=False)
    t = pd.DataFrame({"icustay_id": w.icustay_id, "onset_true": w.onset, "sofa_true": w.sofa_max})
    t = t[t.icustay_id.isin(st.icustay_id)].merge(on[["icustay_id", "onset_s"]], on="icustay_id", how="left")
    has_t, has_r = np.isfinite(t.onset_true.to_numpy()), t.onset_s.notna().to_numpy()
    both = has_t & has_r
    dh = (t.onset_s[both].astype(float) - t.onset_true[both]) / 3600.0
    sep_t = has_t & (t.sofa_true.to_numpy() >= 2)
    sep_r = t.icustay_id.isin(res.stays.icustay_id).to_numpy()
    out = {"stays": a.stays, "seed": a.seed, "population_stays": int(len(t)),
           "dictionary_missing_items": len(rep["dictionary"]["missing_items"]),
           "onset_truth": int(has_t.sum()), "onset_recipe": int(has_r.sum()), "onset_both": int(both.sum()),
           "onset_truth_only": int((has_t & ~has_r).sum()), "onset_recipe_only": int((~has_t & has_r).sum()),
           "onset_exact": int((np.abs(dh) < 1e-6).sum()), "onset_abs_diff_h_max": float(np.abs(dh).max()) if both.any() else 0,
           "septic_truth": int(sep_t.sum()), "septic_recipe": int(sep_r.sum()), "septic_both": int((sep_t & sep_r).sum()),
           "septic_truth_only": int((sep_t & ~sep_r).sum()), "septic_recipe_only": int((~sep_t & sep_r).sum()),
           "cohort_final": res.flow["steps"][-1]["stays"]}
    (RAW / "synth_e2e.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    if not a.keep:
        shutil.rmtree(work)


def report(a):
    lines = ["# synthesize benchmark", "", "Produced by `python benchmarks/bench_synth.py gen|policies|report` "
             "(2-core shared machine, other jobs running).", ""]
    pol = RAW / "synth_policies.json"
    if pol.exists():
        P = json.loads(pol.read_text())
        lines += [f"## Ground truth: true survival of reference policies ({P['n']:,} roll-out patients, seed "
                  f"{P['seed']}, common random numbers)", "",
                  "Value = 100 x survival (icu48_or_hospital) +- Monte-Carlo SE; the difference to the clinician is "
                  "paired (same patients, same noise), with its SE. Policies in adrl/synth/policies.py.", "",
                  "| policy | interaction 0: value | diff vs clinician | interaction 1: value | diff vs clinician |",
                  "|---|---|---|---|---|"]
        r0, r1 = P["by_interaction"]["0.0"], P["by_interaction"]["1.0"]
        for k in r0:
            f = lambda r: (f"{r[k]['value']:.1f} +- {r[k]['se']:.1f}", f"{r[k]['diff_vs_clinician']:+.1f} +- "  # noqa
                           f"{r[k]['diff_se']:.1f}")
            lines.append(f"| {k} | " + " | ".join(f(r0) + f(r1)) + " |")
        lines.append("")
    e2e_f = RAW / "synth_e2e.json"
    if e2e_f.exists():
        E = json.loads(e2e_f.read_text())
        lines += [f"## End to end: world -> adrl.mimic.ingest -> adrl.cohort recipe ({E['stays']} stays, seed {E['seed']})",
                  "", f"- ingest dictionary check (strict): {E['dictionary_missing_items']} concept items missing",
                  f"- population stays (adult, first stay of the admission): {E['population_stays']}",
                  f"- suspected-infection onset: truth {E['onset_truth']}, recipe {E['onset_recipe']}, both "
                  f"{E['onset_both']} (identical time: {E['onset_exact']}; max |diff| {E['onset_abs_diff_h_max']:.2f} h), "
                  f"truth only {E['onset_truth_only']}, recipe only {E['onset_recipe_only']}",
                  f"- septic (onset and max SOFA >= 2 in -48 h..+24 h): truth {E['septic_truth']}, recipe "
                  f"{E['septic_recipe']}, both {E['septic_both']}, truth only {E['septic_truth_only']}, recipe only "
                  f"{E['septic_recipe_only']}; final cohort {E['cohort_final']} trajectories", ""]
    gens = sorted(RAW.glob("synth_gen_*.json"), key=lambda f: json.loads(f.read_text())["stays"])
    if gens:
        G = [json.loads(f.read_text()) for f in gens]
        lines += ["## Generation, read-back and memory", "",
                  "| stays | chunks | simulate (pass 1) s | generate total s (CPU s) | pandas read CHARTEVENTS s | "
                  "pandas read all s (CPU s) | peak RSS MB | compressed MB | CHARTEVENTS rows | septic (truth) | "
                  "septic mortality | load | writer |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for g in G:
            s = g["summary"]
            lines.append(f"| {g['stays']:,} | {g['chunks']} | {g['pass1_simulate_s']} | {g['generate_total_s']} "
                         f"({g['generate_cpu_s']}) | {g.get('read_chartevents_s', '-')} | {g.get('read_all_s', '-')} "
                         f"({g.get('read_all_cpu_s', '-')}) | {g['peak_rss_generate_mb']} | {g['compressed_mb']} | "
                         f"{g['rows']['CHARTEVENTS']:,} | {s['septic_truth']:,} | {s['mortality_septic']:.3f} | "
                         f"{g['load_1min']} | {g.get('writer', 'pyarrow.csv')} |")
        for g in G:
            if "read_all_s" in g:
                lines += ["", f"Generation / read-back ({g['stays']:,} stays, all tables, pandas.read_csv): wall "
                          f"{g['generate_total_s'] / g['read_all_s']:.2f}, CPU {g['generate_cpu_s'] / g['read_all_cpu_s']:.2f} "
                          "(goal < 1; with the pyarrow.csv writer, before issue 2: 12.8 s generation against 6.0 s "
                          "read-back, ratio 2.13, peak RSS 1,160 MB; before the chunked writer: 93.2 s against 19.1 s, "
                          "peak RSS 3,140 MB)."]
        lines += ["", "Faster sort and text codes (tables.py: one packed key per row sorted by np.sort instead of a "
                  "stable argsort; unit/flag/status text coded before the sort; catalogue.py: items grouped once), "
                  "4,000 stays, old and new code run alternately on the same machine state (load 0.9-1.3): "
                  "generation 7.1 / 5.7 / 6.5 s wall (11.0 / 9.0 / 9.9 s CPU) before, 5.5 / 5.4 / 5.6 s "
                  "(8.6 / 8.5 / 8.7 s CPU) after; generation / read-back in the same run 0.88 / 0.84 / 0.96 "
                  "before, 0.82 / 0.84 / 0.85 after. sha256 of every table unchanged (4,000 stays seed 0, "
                  "600 stays seed 5)."]
        lines += ["", "Rows whose writer is pyarrow.csv were measured before issue 2 (the arrow-join writer writes the "
                  "same bytes: sha256 of every table compared at 600 and 4,000 stays; only the time differs)."]
        lines += ["", "Peak RSS is the process maximum (ru_maxrss). Stays are simulated and written in chunks of at most "
                  "100,000 padded stay-hours, so it grows only with the per-stay state kept between the two passes."]
        big = G[-1]
        lines += ["", f"Rows per table ({big['stays']:,} stays):", "", "| table | rows | MB (gz) |", "|---|---|---|"]
        lines += [f"| {k} | {v:,} | {big['bytes'][k + '.csv.gz'] / 1e6:.1f} |" for k, v in big["rows"].items()]
    (RES / "synth.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    RAW.mkdir(parents=True, exist_ok=True)
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("stays", type=int, nargs="?", default=None)
    g.add_argument("--profile", default="default")
    g.add_argument("--dir", default=None, help="scratch directory (outside the repo)")
    g.add_argument("--no-read", action="store_true")
    g.add_argument("--keep", action="store_true")
    q = sub.add_parser("policies")
    q.add_argument("n", type=int, nargs="?", default=5000)
    q.add_argument("--seed", type=int, default=2026)
    e = sub.add_parser("e2e")
    e.add_argument("stays", type=int, nargs="?", default=600)
    e.add_argument("--seed", type=int, default=4)
    e.add_argument("--dir", default=None)
    e.add_argument("--keep", action="store_true")
    sub.add_parser("report")
    a = ap.parse_args()
    {"gen": gen, "policies": policies, "e2e": e2e, "report": report}[a.cmd](a)
