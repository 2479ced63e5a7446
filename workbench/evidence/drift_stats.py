"""The statistical tests of a drift report, as Evidently 0.7 computes them, on cleaned data.

Each function takes one column's reference and current values with nulls, NaN and
+-inf already removed, and returns the number Evidently reports for that test: a p-value
for ``ks``, ``z`` and ``chisquare``, a distance for ``jensenshannon`` and ``wasserstein``,
a ROC AUC for the text tests. Which test a column gets, and the thresholds, are in
:mod:`workbench.evidence.drift`. Numerical columns arrive sorted (``float64``); categorical ones as
value counts over the union of keys, so no test needs the raw rows twice.

>>> import numpy as np
>>> ref, cur = np.sort(np.arange(10.0)), np.sort(np.arange(10.0) + 1)
>>> round(wasserstein(ref, cur), 6)  # every value moved by 1, divided by std(ref)
0.348155
>>> z_test(np.array([60, 40]), np.array([40, 60]))  # doctest: +ELLIPSIS
0.00467...
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats
from scipy.spatial import distance

#: Evidently's default thresholds, and whether a test drifts below (p-values) or at/above them.
THRESHOLDS = {"ks": 0.05, "z": 0.05, "chisquare": 0.05, "jensenshannon": 0.1, "wasserstein": 0.1,
              "perc_text_content_drift": 0.95, "abs_text_content_drift": 0.55}


def drifted(stattest: str, statistic: float, *, text_percentile: float | None = None) -> bool:
    """Evidently's comparison per test: ks p <= t; z, chisquare p < t; distances >= t.

    The text tests compare the domain classifier's AUC: ``abs_text_content_drift`` drifts
    when it is > t, ``perc_text_content_drift`` when it is > ``text_percentile`` (from
    :func:`random_auc_percentile`), which that test needs.
    """
    t = THRESHOLDS[stattest]
    if stattest == "ks":
        return statistic <= t
    if stattest in ("z", "chisquare"):
        return statistic < t
    if stattest == "perc_text_content_drift":
        return statistic > text_percentile
    if stattest == "abs_text_content_drift":
        return statistic > t
    return statistic >= t


def ks(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov p-value (scipy's defaults: two-sided, method auto)."""
    return float(stats.ks_2samp(ref_sorted, cur_sorted)[1])


def wasserstein(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> float:
    """Wasserstein-1 distance divided by the reference's std (ddof 0, at least 0.001).

    The same sum as scipy's ``wasserstein_distance`` over the merged sorted values, but the
    two already-sorted sides are merged by a stable sort (linear for two runs) and the
    CDFs counted by a running sum instead of two binary searches.
    """
    n_r, n_c = len(ref_sorted), len(cur_sorted)
    both = np.concatenate([ref_sorted, cur_sorted])
    order = np.argsort(both, kind="stable")
    values = both[order]
    del both
    from_ref = np.cumsum(order < n_r)[:-1]
    del order
    steps = np.arange(1, n_r + n_c, dtype=np.int64)
    gaps = np.abs(from_ref / n_r - (steps - from_ref) / n_c)
    distance_ = float(np.sum(gaps * np.diff(values)))
    return distance_ / max(float(np.std(ref_sorted)), 0.001)


def z_test(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Two-proportion z-test p-value on the share of everything but the smallest key.

    Counts are over the sorted union of keys (at most two here); the first is the smallest.
    Evidently's form ``2 * (1 - cdf(|z|))`` is kept: it reaches exactly 0 where ``sf`` would not.
    """
    n_r, n_c = ref_counts.sum(), cur_counts.sum()
    if len(ref_counts) == 1:
        return 1.0  # both sides hold the one same value
    p1 = (n_r - ref_counts[0]) / n_r
    p2 = (n_c - cur_counts[0]) / n_c
    pooled = (p1 * n_r + p2 * n_c) / (n_r + n_c)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1 / n_r + 1 / n_c))
    return float(2 * (1 - stats.norm.cdf(np.abs(z))))


def chisquare(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Pearson chi-square p-value of current's counts against reference's shares.

    A key only current has gives an infinite statistic and p = 0, as in Evidently.
    """
    expected = ref_counts * (cur_counts.sum() / ref_counts.sum())
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.chisquare(cur_counts, expected)[1])


def jensenshannon(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log) between the two sides' shares per key."""
    return float(distance.jensenshannon(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()))


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray, eps: float = 1e-4) -> float:
    """Population stability index, sum((c - r) * ln(c / r)) over bins; empty bins count as ``eps``."""
    r = np.maximum(ref_counts / ref_counts.sum(), eps)
    c = np.maximum(cur_counts / cur_counts.sum(), eps)
    return float(np.sum((c - r) * np.log(c / r)))


def decile_counts(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts per bin of the reference's deciles (ties merge bins), for PSI on a numerical column."""
    edges = np.unique(np.quantile(ref_sorted, np.linspace(0.1, 0.9, 9)))
    ref_counts = np.diff(np.searchsorted(ref_sorted, edges, side="right"), prepend=0, append=len(ref_sorted))
    cur_counts = np.diff(np.searchsorted(cur_sorted, edges, side="right"), prepend=0, append=len(cur_sorted))
    return ref_counts, cur_counts


def text_domain_auc(ref: list[str], cur: list[str]) -> tuple[float, np.ndarray]:
    """ROC AUC of Evidently's domain classifier telling current texts from reference ones.

    Returns the AUC and the held-out labels (the random baseline of the percentile test
    is drawn for them). Same split, vectoriser and classifier settings as Evidently.
    """
    import pandas as pd
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline

    domain = pd.concat([pd.DataFrame({"text": ref, "target": 0}), pd.DataFrame({"text": cur, "target": 1})])
    x_train, x_test, y_train, y_test = train_test_split(domain["text"], domain["target"], test_size=0.5,
                                                        random_state=42, shuffle=True)
    pipeline = Pipeline([
        ("vectorization", TfidfVectorizer(sublinear_tf=True, max_df=0.5, stop_words="english")),
        ("classification", SGDClassifier(alpha=0.0001, max_iter=50, penalty="l1", loss="modified_huber",
                                         random_state=42)),
    ])
    pipeline.fit(x_train, y_train)
    return float(roc_auc_score(y_test, pipeline.predict_proba(x_test)[:, 1])), y_test.to_numpy()


def random_auc_percentile(y_test: np.ndarray, p_value: float = 0.05, iterations: int = 1000) -> float:
    """The (1 - p_value) percentile of random classifiers' AUCs, Evidently's seeds, no global state.

    Uniform random scores have no ties, so the AUC is the Mann-Whitney rank statistic.
    """
    seeds = np.random.RandomState(42).randint(0, iterations * 10, size=iterations)
    positives = y_test == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    aucs = np.empty(iterations)
    for i, seed in enumerate(seeds):
        scores = np.random.RandomState(seed).rand(len(y_test))
        ranks = np.empty(len(scores))
        ranks[np.argsort(scores)] = np.arange(1, len(scores) + 1)
        aucs[i] = (ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return float(np.percentile(aucs, 100 * (1 - p_value)))
