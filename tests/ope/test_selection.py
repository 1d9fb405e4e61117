import numpy as np
import pandas as pd
import pytest

from adrl.errors import EmptyResultError
from adrl.ope.selection import cutoff_sensitivity, pareto_front, select
from adrl.ope.workflow import select_models

#              A     B     C     D     E     F(=C)  G
WIS = np.array([95.0, 93.0, 92.0, 90.0, 91.0, 92.0, np.nan])
ESS = np.array([50.0, 150.0, 250.0, 300.0, 100.0, 250.0, 0.0])


def test_pareto_front_hand_made():
    np.testing.assert_array_equal(pareto_front(WIS, ESS), [1, 1, 1, 1, 0, 1, 0])


def test_select_hand_made():
    s = select(WIS, ESS, 200)
    assert (s.index, s.flagged, s.n_frontier, s.n_undefined) == (2, False, 5, 1)  # C (tie with F: lower index)
    assert select(WIS, ESS, 0).index == 0                       # A: best WIS overall
    assert select(WIS, ESS, 120).index == 1                     # B
    s = select(WIS, ESS, 400)                                   # nobody qualifies: highest ESS, flagged
    assert (s.index, s.flagged) == (3, True)


def test_select_with_no_defined_wis_raises():
    with pytest.raises(EmptyResultError, match="none of 2 candidates"):
        select([np.nan, np.nan], [0, 0], 10)


def test_pareto_front_matches_brute_force_with_ties():
    rng = np.random.default_rng(0)
    w = rng.integers(0, 8, 60).astype(float)
    e = rng.integers(0, 8, 60).astype(float)
    brute = np.array([not any((w[j] >= w[i] and e[j] >= e[i] and (w[j] > w[i] or e[j] > e[i]))
                              for j in range(60)) for i in range(60)])
    np.testing.assert_array_equal(pareto_front(w, e), brute)


def test_cutoff_sensitivity_moves_to_larger_ess():
    sens = cutoff_sensitivity(WIS, ESS, n_val=1000, c=0.3, points=31)
    assert sens[0]["cutoff"] == 0 and sens[-1]["cutoff"] == pytest.approx(375)
    ess = [r["ess"] for r in sens]
    assert ess == sorted(ess)
    assert [r["flagged"] for r in sens][-1] is True  # 375 > 300: nobody qualifies


def test_select_models_per_variant_and_headline():
    rows = []
    for (alg, mixer, aug), base in zip([("bcq", "none", False), ("adbcq", "linear", True), ("adbcq", "mlp2", False)],
                                       [90, 92, 94]):
        for step, (dw, e) in enumerate([(0, 300), (3, 120), (5, 20)]):
            rows.append({"run_id": f"{alg}-{mixer}", "algorithm": alg, "mixer": mixer, "augment": aug, "tau": 0.3,
                         "seed": 0, "step": 100 * step, "wis": base + dw, "ess": e})
    scores, sel = select_models(pd.DataFrame(rows), n_val=1000, c=0.1)  # cutoff 100
    assert set(sel["variants"]) == {"bcq", "adbcq[linear,aug]", "adbcq[mlp2,noaug]"}
    v = sel["variants"]
    assert scores.loc[v["adbcq[linear,aug]"]["index"], "wis"] == 95
    assert scores.loc[v["adbcq[mlp2,noaug]"]["index"], "wis"] == 97
    a = sel["algorithms"]
    assert a["adbcq"]["variant"] == "adbcq[mlp2,noaug]" and scores.loc[a["adbcq"]["index"], "wis"] == 97
    assert scores.loc[a["bcq"]["index"], "wis"] == 93
    assert scores["selected"].sum() == 2 and scores["selected_variant"].sum() == 3
    assert scores["frontier"].all()  # each variant's three points trade WIS against ESS
