"""Stage `cohort`: interim event tables -> Sepsis-3 trajectories (../shared/docs/cohort.md).

deps: data/interim/events, adrl/cohort, adrl/mimic/facts      params: cohort
outs: data/processed/{trajectories,trajectories_raw,stays}.parquet, data/processed/cohort/, data/processed/export/,
      reports/cohort_flow.json                              metrics: reports/metrics/cohort.json
"""
from __future__ import annotations

import logging
import time

import pandas as pd

from adrl import paths
from adrl.cohort.build import STATIC, build_cohort, load_interim, population, write_outputs
from adrl.cohort.build import Flow
from adrl.cohort.mimic_adapter import build_spec
from adrl.cohort.onset import antibiotics, cultures, onsets
from pipeline._common import run_stage, write_metrics

log = logging.getLogger("adrl.cohort")
METRICS = paths.METRICS / "cohort.json"
FLOW = paths.REPORTS / "cohort_flow.json"


def load_events(p, spec, events_dir=paths.INTERIM_EVENTS):
    """Static tables, then the events of the stays that can have an onset (a pre-pass keeps memory bounded)."""
    static = {t: load_interim(events_dir, t) for t in STATIC}
    st = population(static, p, Flow(), spec.facts)
    ev = {"prescriptions": load_interim(events_dir, "prescriptions", hadm_ids=st["hadm_id"]),
          "microbiologyevents": load_interim(events_dir, "microbiologyevents", subject_ids=st["subject_id"]),
          "procedureevents_mv": load_interim(events_dir, "procedureevents_mv", icustay_ids=st["icustay_id"])}
    cult_ce = load_interim(events_dir, "chartevents", icustay_ids=st["icustay_id"],
                           itemids=spec.culture_items.loc[spec.culture_items["table"] == "chartevents", "itemid"])
    from collections import Counter
    abx = antibiotics(ev["prescriptions"], st, spec, p.infection.attach_to_icu_h, Counter())
    cul = cultures(ev["microbiologyevents"], cult_ce, ev["procedureevents_mv"], st, spec, p.infection.attach_to_icu_h,
                   Counter())
    on = onsets(abx, cul, p.infection.abx_then_culture_h, p.infection.culture_then_abx_h, p.fix("onset_search"))
    cand = st[st["icustay_id"].isin(on["icustay_id"])]
    log.info("cohort: %d stays with an onset; their events are read chunk by chunk", len(cand))
    ev["chartevents"] = cult_ce

    def load_chunk(sub):
        out = {t: load_interim(events_dir, t, icustay_ids=sub["icustay_id"])
               for t in ("chartevents", "outputevents", "inputevents_mv", "inputevents_cv")}
        out["labevents"] = load_interim(events_dir, "labevents", hadm_ids=sub["hadm_id"])
        return out
    return static, ev, load_chunk


def metrics_of(res) -> dict:
    f = res.flow
    m = {"stays_final": f["steps"][-1]["stays"], "rows": int(len(res.trajectories)),
         "traj_len_mean": f["trajectory_length"]["mean"], "mortality_overall": f["mortality"]["overall"]}
    for s, n in f["split_stays"].items():
        m[f"stays_{s}"] = n
        m[f"rows_{s}"] = f["split_rows"][s]
        m[f"transitions_{s}"] = f["split_transitions"][s]
        if f["mortality"].get(s) is not None:
            m[f"mortality_{s}"] = f["mortality"][s]
    for i, st in enumerate(f["steps"]):
        m[f"flow_{i:02d}"] = st["stays"]
    counts = f["action_table"]["counts"]
    for fb in range(5):
        for vb in range(5):
            m[f"action_{5 * fb + vb:02d}"] = counts[fb][vb]
    return m


def main(cfg, run) -> None:
    p = cfg.cohort
    t0 = time.time()
    spec = build_spec(p)
    static, ev, load_chunk = load_events(p, spec)
    res = build_cohort(static, ev, p, spec, load_chunk=load_chunk)
    out = write_outputs(res, p, paths.PROCESSED, FLOW)
    m = metrics_of(res)
    m["seconds"] = time.time() - t0
    write_metrics(METRICS, m)
    run.log_metrics(m)
    run.log_dict(res.flow, "cohort_flow.json")
    run.log_dict(res.normalization, "normalization.json")
    run.log_dict(res.action_edges, "action_edges.json")
    tab = pd.DataFrame(res.flow["action_table"]["counts"], columns=[f"vaso_{i}" for i in range(5)])
    tab.insert(0, "fluid_bin", range(5))
    run.log_table(tab, "action_table.json")
    log.info("cohort: %d stays, %d rows; wrote %s", m["stays_final"], m["rows"], ", ".join(map(str, out.values())))


if __name__ == "__main__":
    run_stage("cohort", main, params_of=lambda cfg: {"cohort": cfg.cohort.resolved()})
