"""The selection audit on a hand-made set of candidates with known true values."""
import numpy as np
import pytest

from adrl.errors import InputError
from adrl.ope.audit import audit, spearman, winner


def test_audit_numbers_on_a_hand_made_set():
    truth = np.array([70.0, 80.0, 75.0, 90.0, 60.0, 85.0, 65.0])
    est = {"perfect": truth + 3,                                        # same order, shifted
           "reversed": -truth,                                          # exactly the wrong order
           "fooled": np.array([70, 80, 75, 90, 99, 85, np.nan])}         # ranks the worst (60) first
    res = audit(est, truth, selected={"reversed": 3})
    assert res["perfect"]["spearman"] == pytest.approx(1.0)
    assert res["perfect"]["regret"] == 0 and res["perfect"]["top5_precision"] == 1.0
    assert res["reversed"]["spearman"] == pytest.approx(-1.0)
    assert res["reversed"]["regret"] == 0.0          # its selection rule picked index 3 anyway (given)
    assert res["reversed"]["top5_precision"] == pytest.approx(3 / 5)   # bottom 5 of 7 share 3 with the top 5
    f = res["fooled"]
    assert f["selected"] == 4 and f["regret"] == pytest.approx(30.0) and f["selected_true"] == 60.0
    # ranks: 60 -> 6th of 7 by estimate (NaN lowest), truth order otherwise intact
    assert f["spearman"] == pytest.approx(spearman([70, 80, 75, 90, 99, 85, -1e9], truth))
    assert f["top5_precision"] == pytest.approx(4 / 5) and f["n_estimated"] == 6
    assert winner(res) == "perfect"


def test_spearman_averages_ties():
    assert spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(np.corrcoef([1.5, 1.5, 3], [1, 2, 3])[0, 1])


def test_audit_rejects_mismatched_input():
    with pytest.raises(InputError, match="estimator wis"):
        audit({"wis": np.ones(3)}, np.arange(4.0))
    with pytest.raises(InputError, match="finite true values"):
        audit({"wis": np.ones(2)}, np.array([1.0, np.nan]))


def test_promotion_flags_name_every_reason():
    from adrl.ope.workflow import promotion_flags

    good = {"ess": 40.0, "true_value": 80.0}
    assert promotion_flags(good, {"fqe_converged": True, "flagged": False}, 13.6, 77.9) == []
    flags = promotion_flags({"ess": 1.5, "true_value": 72.7},
                            {"fqe_converged": False, "fqe_drift": 3.2, "fqe_td_mean": 0.4, "flagged": True,
                             "value_check": {"ratio": 0.02, "converged": False}}, 13.6, 77.9)
    assert flags[0] == "test ESS 1.5 below the cutoff 13.6" and "selection flagged" in flags
    assert any(f.startswith("FQE not converged (start value moved 3.20") for f in flags)
    assert "learner not converged (value check ratio 0.02)" in flags
    assert flags[-1] == "true value 72.7 below the clinicians' 77.9"
    # no truth (a real source): no truth flag; a value check in range is fine
    assert promotion_flags({"ess": 40.0, "true_value": None}, {"value_check": {"ratio": 1.1}}, 13.6, None) == []
