"""Checks and prepares the inputs of :func:`workbench.evidence.explain.explain_model`.

The model (fitted, with ``predict``), X (polars or pandas, columns matching the model), y,
row ids, and which rows are explained and which serve as the SHAP background (both sampled
with ``seed``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from workbench.errors import ValidationError


# --------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------
def check_fitted(model) -> None:
    """Refuse a model that cannot be explained: no ``predict``, no final step, or not fitted.

    Parameters
    ----------
    model : estimator or Pipeline
        The model to explain; for a pipeline, its last step is checked.

    Raises
    ------
    ValidationError
        ``model`` has no ``predict``, the pipeline's last step is None or
        ``"passthrough"``, or scikit-learn says the estimator is not fitted.
    """
    from sklearn.exceptions import NotFittedError
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_is_fitted

    if not hasattr(model, "predict"):
        raise ValidationError(
            f"unsupported model: {type(model).__name__} has no predict(); explain_model needs a "
            "fitted scikit-learn-style estimator or pipeline")
    target = model[-1] if isinstance(model, Pipeline) else model
    if target in (None, "passthrough"):
        raise ValidationError("unsupported model: the pipeline has no final estimator")
    try:
        check_is_fitted(target)
    except NotFittedError:
        raise ValidationError(
            f"model {type(model).__name__} is not fitted: fit it before explaining it") from None
    except TypeError:
        # not a scikit-learn estimator; accept if it looks usable
        if not (hasattr(target, "predict")):
            raise ValidationError(f"unsupported model: {type(target).__name__}") from None


# --------------------------------------------------------------------------------------
# input frames
# --------------------------------------------------------------------------------------
def as_pandas(X):
    """``X`` as a pandas DataFrame (a pandas one is returned as is, not copied).

    Parameters
    ----------
    X : polars DataFrame or LazyFrame, or pandas DataFrame

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    ValidationError
        ``X`` is of any other type.
    """
    import pandas as pd

    if isinstance(X, pl.DataFrame):
        return X.to_pandas()
    if isinstance(X, pl.LazyFrame):
        return X.collect().to_pandas()
    if isinstance(X, pd.DataFrame):
        return X
    raise ValidationError(
        f"X must be a polars or pandas DataFrame, not {type(X).__name__}")


def row_ids_of(Xpd, X, row_id: str | None) -> tuple[Any, list]:
    """(X without the id column, ids) — ids from ``row_id=``, a ``row_id`` column, or the index."""
    import pandas as pd

    col = row_id
    if col is None and "row_id" in Xpd.columns:
        col = "row_id"
    if col is not None:
        if col not in Xpd.columns:
            raise ValidationError(f"row_id column {col!r} is not a column of X")
        ids = Xpd[col].tolist()
        Xpd = Xpd.drop(columns=[col])
    elif isinstance(X, pd.DataFrame):
        ids = X.index.tolist()
    else:
        ids = list(range(len(Xpd)))
    if len(set(ids)) != len(ids):
        raise ValidationError("row ids are not unique: pass row_id= naming a unique id column")
    return Xpd, ids


def align_columns(model, Xpd):
    """``Xpd``'s columns put in the order the model was fitted with, checked against it.

    Parameters
    ----------
    model : estimator or Pipeline
        Fitted; its ``feature_names_in_`` or, failing that, ``n_features_in_`` is checked.
    Xpd : pandas.DataFrame
        The feature columns.

    Returns
    -------
    Xpd : pandas.DataFrame
        Reordered to ``feature_names_in_`` when the model has it, else as given.
    named : bool
        Whether the model was fitted with column names (then it is given DataFrames,
        otherwise numpy arrays).

    Raises
    ------
    ValidationError
        Columns are missing or unexpected, or their count differs from ``n_features_in_``.
    """
    expected = getattr(model, "feature_names_in_", None)
    if expected is not None:
        expected = [str(c) for c in expected]
        cols = [str(c) for c in Xpd.columns]
        missing = [c for c in expected if c not in cols]
        extra = [c for c in cols if c not in expected]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing columns {missing}")
            if extra:
                parts.append(f"unexpected columns {extra}")
            raise ValidationError(
                "columns of X do not match the model's feature_names_in_: " + "; ".join(parts))
        return Xpd[expected], True
    n_in = getattr(model, "n_features_in_", None)
    if n_in is not None and Xpd.shape[1] != n_in:
        raise ValidationError(
            f"X has {Xpd.shape[1]} columns but the model was fitted on {n_in} features")
    return Xpd, False


def y_array(y, Xpd, n: int):
    """The true targets as an array, and ``Xpd`` without them when ``y`` names one of its columns.

    Parameters
    ----------
    y : array-like, polars Series, str or None
        The targets, or the name of a column of ``Xpd`` holding them.
    Xpd : pandas.DataFrame
        The rows of X.
    n : int
        The number of rows ``y`` must have when it is given as values.

    Returns
    -------
    Xpd : pandas.DataFrame
        Without the ``y`` column, if ``y`` named one.
    y : numpy.ndarray or None
        None when ``y`` is None.

    Raises
    ------
    ValidationError
        ``y`` names no column of ``Xpd``, or is not one value per row.
    """
    if y is None:
        return Xpd, None
    if isinstance(y, str):
        if y not in Xpd.columns:
            raise ValidationError(f"y column {y!r} is not a column of X")
        arr = Xpd[y].to_numpy()
        return Xpd.drop(columns=[y]), arr
    if isinstance(y, pl.Series):
        arr = y.to_numpy()
    else:
        arr = np.asarray(y)
    if arr.ndim != 1 or len(arr) != n:
        raise ValidationError(f"y must be one value per row of X ({n}); got shape {arr.shape}")
    return Xpd, arr


def sample_rows(n: int, sample, max_rows, seed: int) -> tuple[np.ndarray, dict]:
    """Which of ``n`` rows to explain: all, or a uniform random sample drawn with ``seed``.

    Parameters
    ----------
    n : int
        Rows available.
    sample : int, float or None
        A row count (> 0), or a fraction in (0, 1]; None: all rows.
    max_rows : int or None
        A cap applied after ``sample``.
    seed : int
        Seed of the sample.

    Returns
    -------
    idx : numpy.ndarray
        Sorted row positions.
    sampled : dict
        ``rows_total``, ``rows_explained``, ``seed``, ``method``, ``max_rows`` and ``sample``.

    Raises
    ------
    ValidationError
        ``sample`` or ``max_rows`` is out of range or of the wrong type.
    """
    target = n
    if sample is not None:
        if isinstance(sample, float) and 0 < sample <= 1:
            target = max(1, int(round(n * sample)))
        elif isinstance(sample, (int, np.integer)) and not isinstance(sample, bool) and sample > 0:
            target = min(n, int(sample))
        else:
            raise ValidationError(
                f"sample must be a row count > 0 or a fraction in (0, 1], not {sample!r}")
    if max_rows is not None:
        if isinstance(max_rows, bool) or not isinstance(max_rows, (int, np.integer)) or max_rows < 1:
            raise ValidationError(f"max_rows must be a positive integer, not {max_rows!r}")
        target = min(target, int(max_rows))
    if target >= n:
        idx = np.arange(n)
        method = "all rows"
    else:
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(n, size=target, replace=False))
        method = "uniform random sample without replacement (row order kept)"
    return idx, {"rows_total": n, "rows_explained": int(len(idx)), "seed": seed,
                 "method": method, "max_rows": max_rows, "sample": sample}


def background_idx(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted positions of the SHAP background rows: all ``n`` rows, or a random ``size`` of them.

    The sample is drawn from ``seed`` on its own stream, independent of :func:`sample_rows`.
    """
    if n <= size:
        return np.arange(n)
    rng = np.random.default_rng([seed, 1])
    return np.sort(rng.choice(n, size=size, replace=False))
