"""Aggregate online runs: per (task, n, agent) the per-seed final return and AUC, paired AD-DQN minus DecQN
differences with 95% t-intervals over seeds, the trend of the gap with n, the effect of augmentation, and
the learning-curve figure (mean and 95% CI over seeds against environment steps)."""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

BASELINE = "decqn"


def t_ci(x) -> dict:
    """Mean and 95% t-interval of a sample (paired differences over seeds)."""
    x = np.asarray(x, float)
    m = float(x.mean())
    if len(x) < 2:
        return {"mean": m, "lo": float("nan"), "hi": float("nan"), "n": len(x)}
    h = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return {"mean": m, "lo": m - h, "hi": m + h, "n": len(x)}


def summarise(cells: list[dict], agents: list[dict]) -> dict:
    """cells: records {task, n, agent, seeds, final (per seed), auc (per seed), curves}; agents: the specs
    ({name, kind, mixer, augment}) in params order."""
    by = {(c["task"], c["n"], c["agent"]): c for c in cells}
    tasks = sorted({c["task"] for c in cells}, key=["easy", "hard"].index)
    ns = sorted({c["n"] for c in cells})
    names = [a["name"] for a in agents if any(c["agent"] == a["name"] for c in cells)]
    kind = {a["name"]: a for a in agents}
    out: dict = {"per_cell": {}, "ad_minus_decqn": {}, "gap_trend": {}, "augmentation": {}}
    for (task, n, agent), c in by.items():
        out["per_cell"].setdefault(task, {}).setdefault(str(n), {})[agent] = {
            "seeds": c["seeds"], "final_return": c["final"], "auc": c["auc"],
            "final_mean": float(np.mean(c["final"])), "auc_mean": float(np.mean(c["auc"]))}

    def paired(task, n, a, b, metric):
        ca, cb = by.get((task, n, a)), by.get((task, n, b))
        if ca is None or cb is None:
            return None
        common = [s for s in ca["seeds"] if s in cb["seeds"]]
        va = dict(zip(ca["seeds"], ca[metric]))
        vb = dict(zip(cb["seeds"], cb[metric]))
        return [va[s] - vb[s] for s in common]

    ad = [a for a in names if kind[a]["kind"] == "addqn"]
    for task in tasks:
        for a in ad:
            for metric in ("auc", "final"):
                diffs = {n: paired(task, n, a, BASELINE, metric) for n in ns}
                diffs = {n: d for n, d in diffs.items() if d}
                if not diffs:
                    continue
                key = f"{task}/{a}/{metric}"
                out["ad_minus_decqn"][key] = {str(n): {**t_ci(d), "diffs": d} for n, d in diffs.items()}
                if len(diffs) >= 2:  # does the gap grow with n? slope of the paired gap on log2 n, per seed
                    seeds_common = set.intersection(*(set(range(len(d))) for d in diffs.values()))
                    x = np.log2([n for n in diffs])
                    slopes = [float(np.polyfit(x, [diffs[n][i] for n in diffs], 1)[0]) for i in sorted(seeds_common)]
                    out["gap_trend"][key] = {"slope_per_doubling_n": t_ci(slopes),
                                             "largest_minus_smallest_n": t_ci(
                                                 np.array(diffs[max(diffs)]) - np.array(diffs[min(diffs)]))}
        # augmentation: the same agent with and without it (same kind and mixer)
        for a in ad:
            if not kind[a]["augment"]:
                continue
            twins = [b for b in names if b != a and kind[b]["mixer"] == kind[a]["mixer"] and not kind[b]["augment"]
                     and kind[b]["kind"] in ("addqn", "decqn")]
            if kind[a]["mixer"] == "mean" and BASELINE in names:
                twins = [BASELINE]
            for b in twins[:1]:
                for metric in ("auc", "final"):
                    res = {str(n): t_ci(d) for n in ns if (d := paired(task, n, a, b, metric))}
                    if res:
                        out["augmentation"][f"{task}/{a}_minus_{b}/{metric}"] = res
    return out


def figure(cells: list[dict], agents: list[dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({c["task"] for c in cells}, key=["easy", "hard"].index)
    ns = sorted({c["n"] for c in cells})
    names = [a["name"] for a in agents if any(c["agent"] == a["name"] for c in cells)]
    colours = dict(zip(names, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 3))
    fig, axes = plt.subplots(len(tasks), len(ns), figsize=(4.2 * len(ns), 3.3 * len(tasks)), squeeze=False,
                             sharey=True)
    for i, task in enumerate(tasks):
        for j, n in enumerate(ns):
            ax = axes[i][j]
            for c in cells:
                if c["task"] != task or c["n"] != n:
                    continue
                steps = np.asarray(c["steps"]) / 1000
                r = np.asarray(c["curves"], float)  # (seeds, evals)
                m = r.mean(0)
                h = (stats.t.ppf(0.975, len(r) - 1) * r.std(0, ddof=1) / math.sqrt(len(r))) if len(r) > 1 else 0 * m
                ax.plot(steps, m, label=c["agent"], color=colours[c["agent"]], lw=1.4)
                ax.fill_between(steps, m - h, m + h, color=colours[c["agent"]], alpha=0.15, lw=0)
            ax.set_title(f"point_mass-{task}, {n} x {n} = {n * n} actions", fontsize=9)
            ax.set_xlabel("environment steps (thousands)")
            if j == 0:
                ax.set_ylabel("evaluation return")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.suptitle("Greedy evaluation return (mean and 95% CI over seeds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(res: dict) -> str:
    """The results file as markdown tables: mean final return and AUC per cell, then the paired differences."""
    f = lambda x: f"{x:.0f}"  # noqa: E731
    ci = lambda c: f"{c['mean']:+.0f} [{c['lo']:+.0f}, {c['hi']:+.0f}]"  # noqa: E731
    lines = [f"Profile `{res['profile']}`: {res['env_steps_per_run']:,} environment steps per run, seeds "
             f"{res['seeds']}; returns on the suite's scale (at most 1,000 per episode).", ""]
    if res.get("missing_cells"):
        lines += [f"Unfinished cells (not included): {', '.join(res['missing_cells'])}.", ""]
    agents = res["agents"]
    lines += ["| task | n | " + " | ".join(agents) + " |", "|---|---|" + "---|" * len(agents)]
    for task, by_n in res["per_cell"].items():
        for n, cells in sorted(by_n.items(), key=lambda kv: int(kv[0])):
            row = [f"{f(cells[a]['final_mean'])} / {f(cells[a]['auc_mean'])}" if a in cells else "" for a in agents]
            lines.append(f"| {task} | {n} | " + " | ".join(row) + " |")
    lines += ["", "Cells: mean final return / mean AUC (the mean evaluation return over the run's evaluations).", "",
              "| comparison (paired over seeds, 95% t-CI) | metric | " + " | ".join(
                  f"n = {n}" for n in res["levels"]) + " |", "|---|---|" + "---|" * len(res["levels"])]
    seen = set()
    for key, by_n in [*res["ad_minus_decqn"].items(), *res["augmentation"].items()]:
        task, name, metric = key.split("/")
        label = f"{task}: {name} minus decqn" if "_minus_" not in name else f"{task}: {name.replace('_minus_', ' minus ')}"
        if (label, metric) in seen:  # AD-DQN(mean, aug) minus DecQN is also the augmentation effect at mean
            continue
        seen.add((label, metric))
        lines.append(f"| {label} | {metric} | " + " | ".join(
            ci(by_n[str(n)]) if str(n) in by_n else "" for n in res["levels"]) + " |")
    if res.get("gap_trend"):
        lines += ["", "| gap trend with n (AD-DQN minus DecQN) | slope per doubling of n | largest minus smallest n |",
                  "|---|---|---|"]
        for key, t in res["gap_trend"].items():
            lines.append(f"| {key} | {ci(t['slope_per_doubling_n'])} | {ci(t['largest_minus_smallest_n'])} |")
    return "\n".join(lines) + "\n"
