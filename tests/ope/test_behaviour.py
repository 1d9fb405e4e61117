import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from adrl.errors import InputError
from adrl.ope.behaviour import KnnBehaviour, behaviour_metrics


def data(n=400, d=4, seed=0, actions=(0, 3, 7, 12, 24)):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = np.asarray(actions)[rng.integers(0, len(actions), n)]
    return X, y


def test_predict_proba_has_all_25_columns_and_matches_sklearn():
    X, y = data()
    Xq = np.random.default_rng(1).normal(size=(50, 4))
    p = KnnBehaviour(n_neighbors=15).fit(X, y).predict_proba(Xq)
    assert p.shape == (50, 25)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    unseen = np.setdiff1d(np.arange(25), np.unique(y))
    assert (p[:, unseen] == 0).all()
    ref = KNeighborsClassifier(n_neighbors=15).fit(X, y)
    np.testing.assert_allclose(p[:, ref.classes_], ref.predict_proba(Xq))


def test_self_fit_gives_logged_action_at_least_one_over_k():
    X, y = data(n=300, actions=tuple(range(25)))
    k = 20
    p = KnnBehaviour(n_neighbors=k).fit(X, y).predict_proba(X)
    assert (p[np.arange(len(y)), y] >= 1 / k - 1e-12).all()


def test_factored_is_product_of_sub_action_knns():
    X, y = data(n=300, actions=tuple(range(25)), seed=3)
    Xq = np.random.default_rng(4).normal(size=(40, 4))
    knn = KnnBehaviour(n_neighbors=25, kind="factored").fit(X, y)
    p = knn.predict_proba(Xq)
    pf = KNeighborsClassifier(n_neighbors=25).fit(X, y // 5).predict_proba(Xq)
    pv = KNeighborsClassifier(n_neighbors=25).fit(X, y % 5).predict_proba(Xq)
    np.testing.assert_allclose(p, np.einsum("nf,nv->nfv", pf, pv).reshape(40, 25))
    both = knn.predict_proba_both(Xq)
    np.testing.assert_allclose(both["factored"], p)
    np.testing.assert_allclose(both["joint"], KnnBehaviour(25).fit(X, y).predict_proba(Xq))


def test_k_larger_than_data_uses_all_rows():
    X, y = data(n=8)
    knn = KnnBehaviour(n_neighbors=100).fit(X, y)
    assert knn.k_ == 8
    np.testing.assert_allclose(knn.predict_proba(X[:2]), np.tile(np.bincount(y, minlength=25) / 8, (2, 1)))


@pytest.mark.parametrize("X, y, needle", [
    (np.full((5, 2), np.nan), np.zeros(5, int), "NaN or inf"),
    (np.zeros((5, 2)), np.full(5, 25), "outside"),
    (np.zeros((5, 2)), np.zeros(4, int), "5 state rows but 4 actions"),
    (np.zeros(5), np.zeros(5, int), "2-D"),
])
def test_bad_fit_data(X, y, needle):
    with pytest.raises(InputError, match=needle):
        KnnBehaviour(3).fit(X, y)


def test_query_dimension_mismatch_and_unfitted():
    with pytest.raises(InputError, match="call fit"):
        KnnBehaviour(3).predict_proba(np.zeros((2, 2)))
    X, y = data()
    with pytest.raises(InputError, match="dims"):
        KnnBehaviour(3).fit(X, y).predict_proba(np.zeros((2, 3)))


def test_behaviour_metrics_accuracy_and_calibration():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 25, 2000)
    perfect = np.eye(25)[y]
    m = behaviour_metrics(perfect, y)
    assert m["top1"] == 1 and m["top5"] == 1 and m["ece_top1"] == pytest.approx(0) and m["zero_p_logged_share"] == 0
    # a calibrated model: p(logged)=0.6 on the right class, and right 60% of the time
    right = rng.random(2000) < 0.6
    pred = np.where(right, y, (y + 1) % 25)
    P = np.full((2000, 25), 0.4 / 24)
    P[np.arange(2000), pred] = 0.6
    m = behaviour_metrics(P, y)
    assert m["top1"] == pytest.approx(right.mean())
    assert m["ece_top1"] < 0.05
    # an overconfident one
    P2 = np.eye(25)[pred]
    m2 = behaviour_metrics(P2, y)
    assert m2["ece_top1"] > 0.3 and m2["zero_p_logged_share"] == pytest.approx(1 - right.mean())
    assert sum(b["n"] for b in m["reliability_top1"]) == 2000
