"""The featuriser run bin by bin: each call processes only the new events, carrying aggregation, hold and
forward-fill state from bin to bin (for simulator roll-outs, where the cohort featuriser is called at every
4-hour decision).

    inc = IncrementalFeaturizer(fz, static, onsets)   # fz: a fitted adrl.cohort.featurize.Featurizer
    inc.add(events_of_the_new_hours)                  # interim-schema frames, any number of stays
    rows = inc.rows(until=now)                        # the trajectory rows completed since the last call

Contract: ``rows(until)`` returns exactly the rows that ``fz(static, onsets, all_events_so_far, until)`` returns
for the bins not returned before (same columns, dtypes and values, ordered by stay then step). Events wait in a
buffer until their bin is featurised, so a bin's events are cleaned together whichever calls brought them (in
arrival order, as the batch featuriser sees them). What is kept per stay: the per-bin aggregates (count, sum,
last time, last value, max; sums accumulate in the batch featuriser's order, so they are bit-identical), the
value and time of the latest bin with a value of each concept (holds, the ventilation flag), the last state
row (forward fill beyond the hold), the GCS components of the last ``gcs_part_window_h`` (a missing component
comes from there), fluid totals and the vasopressor rows of bins not computed yet. Events at or after the end
of the grid are dropped (no row depends on them).

Events for a bin already featurised (values arriving late) make the stay be recomputed from all its events when
``keep_history`` is on; without it they are an error naming the stay, never a silent difference. A lab row goes
to the first stay of its admission in the batch (roll-outs have one stay per admission).
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from ..errors import InputError
from ..schemas import DEMOG_COLS, OBS
from .featurize import Featurizer, _attach, grid_columns, until_seconds
from .grid import H, to_seconds
from .records import build_gcs, range_check, raw_records
from .spec import GCS_PARTS
from .treatments import fluid_parts, fluid_rows, vaso_pair_doses, vaso_pairs, vaso_rows

TIME_COLUMNS = {"labevents": "charttime", "chartevents": "charttime", "outputevents": "charttime",
                "inputevents_cv": "charttime", "inputevents_mv": "starttime"}
N_STATE = len(OBS) + len(DEMOG_COLS)


class IncrementalFeaturizer:
    def __init__(self, fz: Featurizer, static: dict, onsets: pd.DataFrame, keep_history: bool = False):
        if fz.normalization is None or fz.action_edges is None:
            raise InputError("incremental featuriser: the featuriser needs normalization.json and action_edges.json")
        self.fz = fz
        self.g = g = fz.grid
        self.st = st = fz.stay_frame(static, onsets)
        self.S = S = len(st)
        C = len(fz.concepts)
        self.C = C
        self.g0 = st["g0"].to_numpy(np.float64)
        self.grid_end = self.g0 + g.kmax * float(g.bin_s)
        self.pos = pd.Series(st["s"].to_numpy(), index=st["icustay_id"].to_numpy())
        self.last_c = np.flatnonzero(fz.agg == "last")
        self.max_c = np.flatnonzero(fz.agg == "max")
        self._last_pos = np.full(C, -1, np.int64)  # concept -> its column in lastv / vmax (-1: none)
        self._last_pos[self.last_c] = np.arange(len(self.last_c))
        self._max_pos = np.full(C, -1, np.int64)
        self._max_pos[self.max_c] = np.arange(len(self.max_c))
        self.gcs_tol = fz.spec.gcs_part_window_h * H
        self.history: list | None = [] if keep_history else None
        self.empty_rec = raw_records({}, st.iloc[:0], fz.spec, fz.fixes, Counter())
        nj = g.nj
        # per-bin aggregates (slot 0: the latest bin before the grid, as in dense_aggregate), one set of (S, .)
        # arrays per slot, made when the slot's first record arrives and dropped once every stay is past it
        self.slots: dict[int, dict[str, np.ndarray]] = {}
        self._spare: list[dict] = []  # arrays of dropped slots, reused (refilled) for new ones
        self.prek = np.full((S, C), np.iinfo(np.int64).min)
        self.fluid = np.zeros((S, nj))          # unclipped fluid totals
        self.vpairs = None                        # vasopressor (row, bin) pairs of bins not computed yet
        self.gcs_hist = self.empty_rec             # recent GCS component records
        self.ingested = np.full(S, -np.inf)       # events before this time (s) are featurised, per stay
        self.buffer: dict = {}                     # table -> [(rows, stay, time)] not featurised yet
        self.hadm_first = st.drop_duplicates("hadm_id").set_index("hadm_id")["s"]
        # carried state
        self.done = np.zeros(S, np.int64)         # slots computed (0 .. done-1)
        self.out = np.zeros(S, np.int64)          # slots whose rows were returned
        self.cval = np.full((S, C), np.nan)       # value and last record time of the latest computed slot
        self.clt = np.full((S, C), np.nan)        # with a value, per concept (the holds' look-back)
        self.prev_state = np.full((S, N_STATE), np.nan)
        self.kfirst = np.full(S, -1, np.int64)

    # ------------------------------------------------------------------ events in
    def add(self, events: dict) -> None:
        """Take the events of the next hours (interim frames by table name; rows of other stays are ignored).
        They are featurised when their bin is: a bin's events are cleaned together, whichever call brought them."""
        if self.history is not None:
            self.history.append(events)
        late = np.zeros(self.S, bool)
        for table, df in events.items():
            if table not in TIME_COLUMNS or df is None or not len(df):
                continue
            s, t = self._locate(table, df)
            s0 = np.maximum(s, 0)
            s = np.where(t < self.grid_end[s0], s, -1)  # at or after the grid's end: no row depends on it
            bad = (s >= 0) & (t < self.ingested[s0])
            late[s[bad]] = True
            ok = (s >= 0) & ~bad
            self.buffer.setdefault(table, []).append((df if ok.all() else df[ok], s[ok], t[ok]))
        if late.any():
            if self.history is None:
                bad = self.st["icustay_id"].to_numpy()[late][:5].tolist()
                raise InputError(f"incremental featuriser: icustay_id(s) {bad} got events in bins already featurised "
                                 "(values arriving late need keep_history=True)")
            self._redo(late)

    def _locate(self, table: str, df: pd.DataFrame):
        """(stay position, time in seconds) of each row; position -1 for rows of other stays. Lab rows go by
        HADM_ID to the admission's first stay in the batch (one stay per admission in roll-outs)."""
        if table == "labevents":
            idx = pd.Index(self.hadm_first.index).get_indexer(df["hadm_id"].to_numpy(np.float64, na_value=np.nan))
            s = np.where(idx >= 0, self.hadm_first.to_numpy()[np.maximum(idx, 0)], -1)
        else:
            idx = pd.Index(self.pos.index).get_indexer(df["icustay_id"].to_numpy(np.float64, na_value=np.nan))
            s = np.where(idx >= 0, self.pos.to_numpy()[np.maximum(idx, 0)], -1)
        t = to_seconds(df[TIME_COLUMNS[table]])
        return s.astype(np.int64), np.where(np.isnan(t), -np.inf, t)  # no time: featurised with the first bin

    def _take(self, cutoff: np.ndarray) -> dict:
        """Buffered events before each stay's ``cutoff`` (removed from the buffer), by table, in arrival order."""
        chunk = {}
        for table, parts in self.buffer.items():
            if not parts:
                continue
            df = pd.concat([p[0] for p in parts], ignore_index=True) if len(parts) > 1 else parts[0][0]
            s = np.concatenate([p[1] for p in parts])
            t = np.concatenate([p[2] for p in parts])
            now = t < cutoff[s]
            chunk[table] = df if now.all() else df[now]
            rest = ~now
            self.buffer[table] = [(df[rest], s[rest], t[rest])] if rest.any() else []
        return chunk

    def _clean(self, events: dict, st: pd.DataFrame):
        fz, counts = self.fz, Counter()
        rec = raw_records(events, st, fz.spec, fz.fixes, counts, fz.spec.facts["lab_pad_h"])
        pos = pd.Series(st["s"].to_numpy(), index=st["icustay_id"].to_numpy())
        mv, cv = _attach(events.get("inputevents_mv"), pos), _attach(events.get("inputevents_cv"), pos)
        fr = fluid_rows(mv, cv, fz.spec, fz.fixes["fluids"], fz.p.actions.tonicity, counts)
        vr = vaso_rows(mv, cv, fz.spec, counts)
        return rec, fr, vr

    def _ingest(self, events: dict, stays: np.ndarray, cutoff: np.ndarray) -> None:
        """Featurise the events of ``stays`` (bool mask) before ``cutoff`` (all their events from
        ``self.ingested`` on): aggregates, fluid totals, vasopressor pairs."""
        fz, g = self.fz, self.g
        every = stays.all()
        rec, fr, vr = (p if every else p[stays[p["s"].to_numpy(np.int64)]]
                       for p in self._clean(events, self.st if every else self.st[stays]))
        start = self.ingested.copy()
        self.ingested = np.where(stays, cutoff, self.ingested)
        # GCS from its components, with the recent components of earlier bins; only this chunk's times are kept
        is_part = rec["concept"].isin(GCS_PARTS).to_numpy()
        if is_part.any():
            with_parts = np.zeros(self.S, bool)
            with_parts[rec["s"].to_numpy(np.int64)[is_part]] = True
            hist = self.gcs_hist[with_parts[self.gcs_hist["s"].to_numpy(np.int64)]]
            built = build_gcs(pd.concat([hist, rec], ignore_index=True) if len(hist) else rec, fz.spec)
            built = built[built["t"].to_numpy() >= start[built["s"].to_numpy(np.int64)]]
            gh = pd.concat([self.gcs_hist, rec[is_part]], ignore_index=True)
            self.gcs_hist = gh[gh["t"].to_numpy() >= self.ingested[gh["s"].to_numpy(np.int64)] - self.gcs_tol]
        else:
            built = build_gcs(rec, fz.spec)
        rec = range_check(built, fz.spec, Counter())
        self._accumulate(*fz.record_arrays(rec))
        cell, vol = fluid_parts(fr, self.g0, g)
        np.add.at(self.fluid.reshape(-1), cell, vol)
        row, j = vaso_pairs(vr, self.g0, g)
        if len(row):
            vp = vr.iloc[row].reset_index(drop=True).assign(j=j)
            self.vpairs = vp if self.vpairs is None else pd.concat([self.vpairs, vp], ignore_index=True)

    def _accumulate(self, s, t, c, v) -> None:
        """dense_aggregate, merged into the carried aggregates."""
        g, C = self.g, self.C
        k = np.floor((t - self.g0[s]) / g.bin_s).astype(np.int64)
        keep = k < g.kmax
        s, t, c, v, k = s[keep], t[keep], c[keep], v[keep], k[keep]
        pre = k < g.kmin
        if pre.any():
            key = s[pre] * C + c[pre]
            newest = np.full(self.S * C, np.iinfo(np.int64).min)
            np.maximum.at(newest, key, k[pre])
            prek = self.prek.reshape(-1)
            reset = newest > prek
            if reset.any():  # a later pre-grid bin replaces the pre slot's aggregate
                rs, rc = np.divmod(np.flatnonzero(reset), C)
                if 0 in self.slots:
                    a = self.slots[0]
                    a["cnt"][rs, rc] = 0
                    a["tot"][rs, rc] = 0.0
                    a["lastt"][rs, rc] = np.nan
                    self._reset_sub(a, rs, rc)
                prek[reset] = newest[reset]
            drop = np.zeros(len(k), bool)
            drop[np.flatnonzero(pre)] = k[pre] < prek[key]
            s, t, c, v, k = s[~drop], t[~drop], c[~drop], v[~drop], k[~drop]
            k = np.maximum(k, g.kmin - 1)
        j = k - (g.kmin - 1)
        if not len(j):
            return
        if (j == j[0]).all():  # one slot (the usual case in roll-outs)
            self._accumulate_slot(int(j[0]), s, t, c, v)
            return
        for jj in np.unique(j):  # each slot's records in their order
            m = j == jj
            self._accumulate_slot(int(jj), s[m], t[m], c[m], v[m])

    def _slot_arrays(self, j: int) -> dict:
        a = self.slots.get(j)
        if a is None and self._spare:
            a = self.slots[j] = self._spare.pop()
            for k, fill in (("cnt", 0), ("tot", 0.0), ("lastt", np.nan), ("lastv", np.nan), ("vmax", -np.inf)):
                a[k].fill(fill)
        elif a is None:
            S, C = self.S, self.C
            a = self.slots[j] = {"cnt": np.zeros((S, C), np.int32), "tot": np.zeros((S, C)),
                                 "lastt": np.full((S, C), np.nan), "lastv": np.full((S, len(self.last_c)), np.nan),
                                 "vmax": np.full((S, len(self.max_c)), -np.inf)}
        return a

    def _accumulate_slot(self, j: int, s, t, c, v) -> None:
        a = self._slot_arrays(j)
        C, n = self.C, self.S * self.C
        flat = s * C + c
        cnt, tot = a["cnt"].reshape(-1), a["tot"].reshape(-1)
        # sums in record order (the batch featuriser's, bit for bit): a cell without records yet gets its records'
        # sum from bincount (which adds in input order from 0.0, as add.at does), a cell with some already add.at
        old = cnt[flat] > 0
        if old.any():
            np.add.at(tot, flat[old], v[old])
            fresh = ~old
            tot += np.bincount(flat[fresh], weights=v[fresh], minlength=n)
        else:
            tot += np.bincount(flat, weights=v, minlength=n)
        cnt += np.bincount(flat, minlength=n).astype(np.int32)
        # the last record of each cell: the latest time, among equal times the last in record order
        whole = np.isfinite(t).all() and (np.floor(t) == t).all()  # times in whole seconds (as charted)
        if not whole:  # (NaN sorts last, fractions of a second: keep the sort)
            order = np.lexsort((t, flat))
            fs = flat[order]
            last = np.r_[fs[1:] != fs[:-1], True]
            lf, lt, lv = fs[last], t[order][last], v[order][last]
        else:
            ti = t.astype(np.int64)  # exact (|t| < 2 ** 53); integer maximum.at is the fast one
            tmax = np.full(n, np.iinfo(np.int64).min)
            np.maximum.at(tmax, flat, ti)
            at_max = np.flatnonzero(ti == tmax[flat])
            pick = np.full(n, -1, np.int64)
            np.maximum.at(pick, flat[at_max], at_max)
            lf = np.flatnonzero(pick >= 0)
            r = pick[lf]
            lt, lv = t[r], v[r]
        lastt = a["lastt"].reshape(-1)
        newer = ~(lt < lastt[lf])  # NaN (no record yet) or not earlier
        lf, lt, lv = lf[newer], lt[newer], lv[newer]
        lastt[lf] = lt
        cell, cc = np.divmod(lf, C)
        hit, pos = self._last_pos[cc] >= 0, self._last_pos[cc]
        a["lastv"][cell[hit], pos[hit]] = lv[hit]
        hit = self._max_pos[c] >= 0
        np.maximum.at(a["vmax"], (s[hit], self._max_pos[c[hit]]), v[hit])

    def _reset_sub(self, a: dict, rs, rc) -> None:
        for col, arr, fill in ((self._last_pos, a["lastv"], np.nan), (self._max_pos, a["vmax"], -np.inf)):
            hit = col[rc] >= 0
            arr[rs[hit], col[rc[hit]]] = fill

    def _redo(self, late: np.ndarray) -> None:
        """Recompute stays that got events in bins already featurised from all their events (rows already
        returned are not returned again)."""
        L = np.flatnonzero(late)
        for a in self.slots.values():
            a["cnt"][L] = 0
            a["tot"][L] = 0.0
            a["lastt"][L] = np.nan
            a["lastv"][L] = np.nan
            a["vmax"][L] = -np.inf
        self.prek[L] = np.iinfo(np.int64).min
        self.fluid[L] = 0.0
        if self.vpairs is not None:
            self.vpairs = self.vpairs[~late[self.vpairs["s"].to_numpy(np.int64)]]
        self.gcs_hist = self.gcs_hist[~late[self.gcs_hist["s"].to_numpy(np.int64)]]
        cutoff = self.ingested.copy()
        self.ingested[L] = -np.inf
        done = self.done[L].copy()
        self.done[L] = 0
        self.cval[L] = np.nan
        self.clt[L] = np.nan
        self.prev_state[L] = np.nan
        events: dict = {}
        for batch in self.history:
            for table, df in batch.items():
                if table not in TIME_COLUMNS or df is None or not len(df):
                    continue
                s, t = self._locate(table, df)
                s0 = np.maximum(s, 0)
                events.setdefault(table, []).append(df[(s >= 0) & late[s0] & (t < cutoff[s0])])
        self._ingest({t: pd.concat(v, ignore_index=True) for t, v in events.items()}, late, cutoff)
        target = np.zeros(self.S, np.int64)
        target[L] = done
        self._advance(target, emit=False)

    def replicate(self, reps: int, static: dict, onsets: pd.DataFrame) -> None:
        """Copy every stay ``reps`` times with all its state and buffered events (copy r of stay i becomes stay
        r * S + i; ``static`` / ``onsets``: the copies' rows, in that order), e.g. after featurising the first
        bin of roll-out patients that several policies then treat differently."""
        if self.history is not None:
            raise InputError("incremental featuriser: replicate() keeps no history (keep_history=False)")
        S = self.S
        st = self.fz.stay_frame(static, onsets)
        if len(st) != S * reps:
            raise InputError(f"incremental featuriser: replicate({reps}) needs {S * reps} stays, got {len(st)}")
        old = self.st
        for name in ("prek", "fluid", "ingested", "done", "out", "cval", "clt", "prev_state", "kfirst", "g0",
                     "grid_end"):
            a = getattr(self, name)
            setattr(self, name, np.concatenate([a] * reps, axis=0))
        self.slots = {j: {k: np.concatenate([x] * reps, axis=0) for k, x in a.items()} for j, a in self.slots.items()}
        self._spare = []

        def shift(df, s):  # rows of stay s -> the same rows for each copy, ids and positions shifted
            parts, ss = [], []
            for r in range(reps):
                new = {c: st[c].to_numpy()[s + r * S] for c in ("subject_id", "hadm_id", "icustay_id")
                       if c in df.columns}
                parts.append(df.assign(**new) if new else df)
                ss.append(s + r * S)
            return pd.concat(parts, ignore_index=True), np.concatenate(ss)

        for name in ("vpairs", "gcs_hist"):
            df = getattr(self, name)
            if df is not None and len(df):
                df2, s2 = shift(df, df["s"].to_numpy(np.int64))
                setattr(self, name, df2.assign(s=s2))
        for table, parts in self.buffer.items():
            out = []
            for df, s, t in parts:
                df2, s2 = shift(df, s)
                out.append((df2, s2, np.concatenate([t] * reps)))
            self.buffer[table] = out
        if (old["g0"].to_numpy() != self.g0[:S]).any() or (st["g0"].to_numpy() != self.g0).any():
            raise InputError("incremental featuriser: replicate() needs the same onsets for every copy")
        self.st, self.S = st, S * reps
        self.pos = pd.Series(st["s"].to_numpy(), index=st["icustay_id"].to_numpy())
        self.hadm_first = st.drop_duplicates("hadm_id").set_index("hadm_id")["s"]

    # ------------------------------------------------------------------ rows out
    def rows(self, until=None) -> pd.DataFrame:
        """Normalised trajectory rows (as the featuriser's) of the bins completed by ``until`` and not returned
        before, ordered by stay and step."""
        g = self.g
        if until is None:
            target = np.full(self.S, g.nj, np.int64)
        else:
            u = until_seconds(until, self.S)
            with np.errstate(invalid="ignore"):
                jmax = np.floor((u - self.g0) / g.bin_s) - g.kmin
            jmax = np.nan_to_num(jmax, nan=-1.0, posinf=g.nj, neginf=-1.0)
            target = np.where(jmax >= 1, np.minimum(jmax + 1, g.nj), 0).astype(np.int64)
        target = np.maximum(target, self.done)
        cutoff = np.where(target > 0, self.g0 + (g.kmin + target - 1) * float(g.bin_s), -np.inf)
        more = cutoff > self.ingested
        if more.any():
            self._ingest(self._take(np.where(more, cutoff, self.ingested)), more, np.where(more, cutoff, self.ingested))
        frames = self._advance(target, emit=True)
        if self.vpairs is not None and len(self.vpairs):
            vp = self.vpairs
            self.vpairs = vp[vp["j"].to_numpy() >= self.done[vp["s"].to_numpy(np.int64)]]
        if frames:
            df = pd.concat(frames, ignore_index=True)
            df = df.iloc[np.lexsort((df["k"].to_numpy(), df["s"].to_numpy()))]
        else:
            df = self._slot(np.zeros(0, np.int64), 0)
        rows = Featurizer.rows_frame(self.st, df, self.kfirst[df["s"].to_numpy()])
        return self.fz.bin_actions(self.fz.normalise(rows))

    def _advance(self, target: np.ndarray, emit: bool) -> list:
        frames = []
        while True:
            need = self.done < target
            if not need.any():
                return frames
            j = int(self.done[need].min())
            R = np.flatnonzero(need & (self.done == j))
            df = self._slot(R, j)
            if emit:
                df = df[df["in_traj"].to_numpy() & (j >= self.out[R])]
                s = df["s"].to_numpy()
                first = self.kfirst[s] < 0
                self.kfirst[s[first]] = df["k"].to_numpy()[first]
                frames.append(df)
                self.out[R] = np.maximum(self.out[R], j + 1)
            self.done[R] = j + 1
            for jj in [x for x in self.slots if x < self.done.min()]:  # every stay is past it
                self._spare.append(self.slots.pop(jj))

    def _slot(self, R: np.ndarray, j: int) -> pd.DataFrame:
        """Compute slot j of stays R from its aggregates and the carried latest values (the holds' look-back)."""
        fz, g = self.fz, self.g
        n = len(R)
        ix = slice(None) if n == self.S else R  # R is sorted: all stays (the usual case) are read as views
        a = self._slot_arrays(j)  # (a slot without records yet: its empty aggregates)
        cnt = a["cnt"][ix]
        lastt = a["lastt"][ix]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(cnt > 0, a["tot"][ix] / np.maximum(cnt, 1), np.nan)
        lastv = np.full(cnt.shape, np.nan)
        lastv[:, self.last_c] = a["lastv"][ix]
        vmax = np.full(cnt.shape, np.nan)
        vmax[:, self.max_c] = np.where(cnt[:, self.max_c] == 0, np.nan, a["vmax"][ix])
        val = fz.slot_values(mean, lastv, vmax, cnt)
        bstart = self.g0[R] + (g.kmin - 1 + j) * float(g.bin_s)
        # hold: the slot's own value, else the latest earlier value, each while within the concept's hold
        cval, clt = self.cval[ix], self.clt[ix]
        has = ~np.isnan(val)
        with np.errstate(invalid="ignore"):
            ok_own = (bstart[:, None] - lastt) <= fz.hold_s[None, :]
            ok_old = (bstart[:, None] - clt) <= fz.hold_s[None, :]
        held = np.where(has, np.where(ok_own, val, np.nan), np.where(ok_old, cval, np.nan))
        held = np.where(fz.hold_s[None, :] >= 0, held, val)
        vi, xi = fz.cidx["mechvent"], fz.cidx["extubation"]
        vin = cnt[:, vi] > 0
        tv = np.where(vin, lastt[:, vi], clt[:, vi])
        tx = np.where(cnt[:, xi] > 0, lastt[:, xi], clt[:, xi])
        self.cval[ix] = np.where(has, val, cval)
        self.clt[ix] = np.where(has, lastt, clt)
        fl = np.zeros(n)
        if j > 0:
            x = self.fluid[ix, j]
            fl = np.where(x < 0, 0.0, x)

        def vaso_of(weight):
            out = np.zeros(n)
            vp = self.vpairs
            if j == 0 or vp is None or not len(vp):
                return out
            where = np.full(self.S, -1, np.int64)
            where[R] = np.arange(n)
            ps = vp["s"].to_numpy(np.int64)
            sel = (where[ps] >= 0) & (vp["j"].to_numpy() == j)
            if sel.any():
                sub = vp[sel].reset_index(drop=True)
                r = where[ps[sel]]
                np.maximum.at(out, r, vaso_pair_doses(sub, np.arange(len(sub)), weight[r], fz.spec,
                                                      fz.fixes["vaso_weight"]))
            return out

        f = fz.features_from_held(self.st.iloc[R], bstart, val, held, cnt, vin, tv, tx, vaso_of)
        state = f["state"]
        if fz.p.state.ffill_beyond_hold:
            nobs = len(OBS)
            cols = np.r_[np.arange(nobs), nobs + 4]
            x = state[:, cols]
            state[:, cols] = np.where(np.isnan(x), self.prev_state[ix][:, cols], x)
            self.prev_state[ix] = state
        return grid_columns(g, self.st, R, np.full(n, j), lambda x: x, state, fl, f["vaso"], f["urine"], f["sofa"],
                            f["has_data"], f["bili_raw"], f["values"])
