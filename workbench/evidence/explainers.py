"""SHAP back-ends for :func:`workbench.evidence.explain.explain_model`: tree, linear and permutation.

Explainer choice (never KernelExplainer: far too slow, shap#66):

* ``TreeExplainer`` for scikit-learn tree models (``RandomForest*``, ``ExtraTrees*``,
  ``GradientBoosting*``, ``HistGradientBoosting*``, ``DecisionTree*``).
* ``LinearExplainer`` for linear models (``LogisticRegression``, ``LinearRegression``,
  ``Ridge``, ``Lasso``, ``ElasticNet``, ``SGD*``), interventional (background = a sample of X).
* ``PermutationExplainer`` otherwise, model-agnostic, with a background of at most
  ``background_size`` rows sampled with ``seed``; also the fall-back when shap cannot read a
  tree/linear model (e.g. multiclass ``GradientBoostingClassifier``); the ``note`` says so.

What is explained (the ``output`` field) and what additivity is checked against:

==========================================  ==============  ================================
model                                       ``output``      additivity compared with
==========================================  ==============  ================================
regressor (any explainer)                   "prediction"    ``predict``
RandomForest/ExtraTrees/DecisionTree clf.   "probability"   ``predict_proba`` (exact: their
                                                            tree output *is* a probability)
GradientBoostingClassifier, binary          "probability"   ``predict_proba[:, 1]``
                                                            (``model_output="probability"``,
                                                            interventional, background)
HistGradientBoostingClassifier, binary      "log_odds"      ``decision_function`` (shap's
                                                            probability output does not add
                                                            up for HGB: 0.03 off, measured)
HistGradientBoosting, multiclass            "raw"           ``decision_function`` (margins)
linear classifier, binary / multiclass      "log_odds"/raw  ``decision_function``
PermutationExplainer, classifier            "probability"   ``predict_proba``
==========================================  ==============  ================================

``output="log_odds"`` (or ``"raw"``) forces the margin for tree classifiers, which is much
faster for ``GradientBoostingClassifier`` (tree-path-dependent instead of interventional).
Binary classifiers explain the positive class (``classes_[1]``): values are
``rows x features``; multiclass: ``rows x features x classes``.

Each back-end explains a float matrix in chunks (one ``progress`` call per chunk) and
returns values and base values normalised to the shapes above.
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np

_TREE_PREFIXES = ("RandomForest", "ExtraTrees", "GradientBoosting", "HistGradientBoosting",
                  "DecisionTree", "ExtraTree")
_LINEAR_NAMES = ("LogisticRegression", "LinearRegression", "Ridge", "Lasso", "ElasticNet",
                 "SGD")
# Tree classifiers whose tree output (tree-path-dependent) already is a class probability.
_PROBA_TREES = ("RandomForest", "ExtraTrees", "DecisionTree", "ExtraTree")


# --------------------------------------------------------------------------------------
# model kinds, outputs
# --------------------------------------------------------------------------------------
def model_kind(est) -> str:
    """``"tree"``, ``"linear"`` or ``"other"``: the explainer family of a scikit-learn estimator.

    Judged by class name and module (see the module docstring); anything not from
    scikit-learn is ``"other"``.
    """
    name = type(est).__name__
    mod = type(est).__module__ or ""
    if mod.startswith("sklearn.") and name.startswith(_TREE_PREFIXES):
        return "tree"
    if mod.startswith("sklearn.linear_model") and name.startswith(_LINEAR_NAMES):
        return "linear"
    return "other"


def classifier_like(model) -> bool:
    """Whether ``model`` is a classifier: scikit-learn says so, or it has ``classes_`` and ``predict_proba``."""
    from sklearn.base import is_classifier

    try:
        if is_classifier(model):
            return True
    except Exception:  # noqa: BLE001 - non-sklearn objects
        pass
    return hasattr(model, "classes_") and hasattr(model, "predict_proba")


def output_fn(model, output: str, binary: bool) -> Callable:
    """The model output that SHAP values of kind ``output`` add up to."""
    if output == "probability":
        def f(X):
            p = np.asarray(model.predict_proba(X), dtype=np.float64)
            return p[:, 1] if binary else p
    elif output in ("log_odds", "raw"):
        def f(X):
            return np.asarray(model.decision_function(X), dtype=np.float64)
    else:
        def f(X):
            return np.asarray(model.predict(X), dtype=np.float64)
    return f


def agnostic_output(model, is_clf: bool) -> str:
    """The ``output`` the PermutationExplainer explains for ``model``.

    ``"prediction"`` for a regressor; for a classifier ``"probability"`` when it has
    ``predict_proba``, else ``"raw"`` when it has ``decision_function``, else ``"prediction"``.
    """
    if not is_clf:
        return "prediction"
    if hasattr(model, "predict_proba"):
        return "probability"
    if hasattr(model, "decision_function"):
        return "raw"
    return "prediction"


# --------------------------------------------------------------------------------------
# the explainers
# --------------------------------------------------------------------------------------
def _chunks(n: int, size: int):
    for s in range(0, n, size):
        yield s, min(n, s + size)


def _run_chunks(fn, M, chunk_rows, progress):
    """fn(chunk) -> (values, base) per chunk; concatenated."""
    n = M.shape[0]
    vals, bases = [], []
    for s, e in _chunks(n, chunk_rows):
        v, b = fn(M[s:e])
        vals.append(v)
        bases.append(b)
        if progress is not None:
            progress(e, n)
    return np.concatenate(vals, axis=0), np.concatenate(bases, axis=0)


def _normalize(values, base, n: int, binary: bool):
    v = np.asarray(values, dtype=np.float64)
    b = np.asarray(base, dtype=np.float64)
    if binary and v.ndim == 3:
        v = v[:, :, -1]
        b = b[..., -1] if b.ndim >= 1 and b.shape[-1] == 2 else b
    if v.ndim == 3:
        k = v.shape[2]
        b = np.broadcast_to(b.reshape(-1, k) if b.size != k else b.reshape(1, k), (n, k)).copy()
    else:
        b = np.broadcast_to(b.reshape(-1) if b.size != 1 else b.reshape(1), (n,)).copy()
    return v, b


def _tree_plan(est, is_clf: bool, binary: bool, requested: str):
    """(output, shap kwargs needing background?) for a tree model."""
    name = type(est).__name__
    if not is_clf:
        return "prediction", False
    if name.startswith(_PROBA_TREES):
        return "probability", False
    margin = "log_odds" if binary else "raw"
    if requested in ("log_odds", "raw"):
        return margin, False
    if name.startswith("GradientBoosting") and binary:
        return "probability", True
    return margin, False


def explain_tree(est, M, bg, is_clf, binary, requested, chunk_rows, progress):
    """SHAP values of a scikit-learn tree model with ``shap.TreeExplainer``.

    Parameters
    ----------
    est : estimator
        The fitted tree model (a pipeline's final step).
    M : numpy.ndarray
        The rows to explain, as the float matrix ``est`` takes.
    bg : numpy.ndarray
        Background rows; used only for a binary ``GradientBoostingClassifier``'s
        probability (interventional).
    is_clf, binary : bool
        Whether ``est`` is a classifier, and a binary one.
    requested : str
        The caller's ``output``; ``"log_odds"`` or ``"raw"`` force the margin of a
        classifier whose tree output is not a probability.
    chunk_rows : int
        Rows per chunk.
    progress : callable or None
        ``progress(done, total)``, called after each chunk.

    Returns
    -------
    values : numpy.ndarray
        ``rows x features``, or ``rows x features x classes`` (multiclass).
    base : numpy.ndarray
        ``rows``, or ``rows x classes``.
    output : str
        What the values add up to: ``"prediction"``, ``"probability"``, ``"log_odds"`` or ``"raw"``.
    how : str
        How shap was run, for the explanation's note.
    """
    import shap

    output, interventional = _tree_plan(est, is_clf, binary, requested)
    if interventional:
        explainer = shap.TreeExplainer(est, bg, model_output="probability",
                                       feature_perturbation="interventional")
    else:
        explainer = shap.TreeExplainer(est, feature_perturbation="tree_path_dependent")
    expected = explainer.expected_value

    def fn(chunk):
        sv = explainer.shap_values(chunk, check_additivity=False)
        if isinstance(sv, list):  # older shap: one array per class
            sv = np.stack(sv, axis=-1)
        return _normalize(sv, expected, chunk.shape[0], binary)

    values, base = _run_chunks(fn, M, chunk_rows, progress)
    how = ("interventional, background of %d rows, model_output='probability'" % len(bg)
           if interventional else "tree_path_dependent")
    return values, base, output, how


def explain_linear(est, M, bg, is_clf, binary, chunk_rows, progress):
    """SHAP values of a scikit-learn linear model with ``shap.LinearExplainer`` (interventional).

    Parameters are those of :func:`explain_tree` (``bg`` is the background here, always
    used); returns ``(values, base, output, how)`` as it does, ``output`` being
    ``"log_odds"`` (binary classifier), ``"raw"`` (multiclass) or ``"prediction"`` (regressor).
    """
    import shap

    explainer = shap.LinearExplainer(est, shap.maskers.Independent(bg, max_samples=len(bg)))

    def fn(chunk):
        r = explainer(chunk)
        return _normalize(r.values, r.base_values, chunk.shape[0], binary)

    values, base = _run_chunks(fn, M, chunk_rows, progress)
    output = ("log_odds" if binary else "raw") if is_clf else "prediction"
    return values, base, output, f"interventional, background of {len(bg)} rows"


class _Codec:
    """Float matrix <-> DataFrame, so shap's maskers see numbers and the model its own dtypes."""

    def __init__(self, Xpd):
        import pandas as pd

        self.columns = list(Xpd.columns)
        self.dtypes = dict(Xpd.dtypes)
        self.cats: dict[str, np.ndarray] = {}
        for c in self.columns:
            s = Xpd[c]
            if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
                self.cats[c] = np.asarray(pd.unique(s.astype(object)), dtype=object)

    def encode(self, Xpd) -> np.ndarray:
        out = np.empty((len(Xpd), len(self.columns)), dtype=np.float64)
        for j, c in enumerate(self.columns):
            if c in self.cats:
                lut = {v: i for i, v in enumerate(self.cats[c])}
                out[:, j] = [lut.get(v, -1) for v in Xpd[c].astype(object)]
            else:
                out[:, j] = Xpd[c].to_numpy(dtype=np.float64, na_value=np.nan)
        return out

    def decode(self, M: np.ndarray):
        import pandas as pd

        data = {}
        for j, c in enumerate(self.columns):
            col = M[:, j]
            if c in self.cats:
                data[c] = self.cats[c][np.clip(col.astype(int), 0, len(self.cats[c]) - 1)]
            else:
                dt = self.dtypes[c]
                if pd.api.types.is_integer_dtype(dt) or pd.api.types.is_bool_dtype(dt):
                    try:
                        data[c] = col.astype(dt)
                    except (TypeError, ValueError):
                        data[c] = col
                else:
                    data[c] = col
        df = pd.DataFrame(data, columns=self.columns)
        for c in self.cats:
            if isinstance(self.dtypes[c], pd.CategoricalDtype):
                df[c] = df[c].astype(self.dtypes[c])
        return df


def explain_permutation(model, Xpd_rows, Xpd_bg, out_fn, binary, seed, chunk_rows,
                         progress, as_frame: bool):
    """Model-agnostic SHAP values with ``shap.PermutationExplainer``, over the original columns.

    Non-numeric columns are encoded as category codes for shap's masker and decoded back
    before each model call, so the model sees its own dtypes.

    Parameters
    ----------
    model : estimator or Pipeline
        The whole model (only ``out_fn`` calls it).
    Xpd_rows, Xpd_bg : pandas.DataFrame
        The rows to explain and the background rows.
    out_fn : callable
        The model output to explain, from :func:`output_fn`.
    binary : bool
        Whether the model is a binary classifier.
    seed : int
        The explainer's seed.
    chunk_rows : int
        Rows per chunk.
    progress : callable or None
        ``progress(done, total)``, called after each chunk.
    as_frame : bool
        Give the model DataFrames (True) or numpy arrays.

    Returns
    -------
    values, base : numpy.ndarray
        Shaped as in :func:`explain_tree`.
    how : str
        The background size and ``max_evals``, for the explanation's note.
    """
    import shap

    codec = _Codec(Xpd_bg if len(Xpd_bg) else Xpd_rows)
    # categories seen in the explained rows too
    for c in codec.cats:
        extra = [v for v in Xpd_rows[c].astype(object).unique() if v not in set(codec.cats[c])]
        if extra:
            codec.cats[c] = np.concatenate([codec.cats[c], np.asarray(extra, dtype=object)])

    def f(M):
        df = codec.decode(np.asarray(M, dtype=np.float64))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return out_fn(df if as_frame else df.to_numpy())

    bg = codec.encode(Xpd_bg)
    M = codec.encode(Xpd_rows)
    nf = M.shape[1]
    explainer = shap.PermutationExplainer(f, shap.maskers.Independent(bg, max_samples=len(bg)),
                                          seed=seed)
    max_evals = max(500, 2 * nf + 1)

    def fn(chunk):
        r = explainer(chunk, max_evals=max_evals, silent=True)
        return _normalize(r.values, r.base_values, chunk.shape[0], binary)

    values, base = _run_chunks(fn, M, chunk_rows, progress)
    return values, base, f"background of {len(bg)} rows, max_evals={max_evals}"
