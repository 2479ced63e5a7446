"""Permutation importance and partial dependence, via :mod:`sklearn.inspection`.

Both run on the model as a whole (partial dependence on the final step when SHAP values are
per transformed column) and add what they did to ``notes``; a failure is noted, not raised.
"""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl


def permutation_importance_of(model, rows, y_rows, named, in_names, n_repeats, seed,
                            notes) -> pl.DataFrame | None:
    """Permutation importance of the whole model over the original columns (None without y).

    Also None when scikit-learn fails; either way ``notes`` gets a line saying what happened.

    Returns
    -------
    polars.DataFrame or None
        ``feature``, ``importance_mean``, ``importance_std``, most important first.
    """
    perm = None
    if y_rows is None:
        notes.append("permutation importance skipped: no y given")
    else:
        from sklearn.inspection import permutation_importance

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = permutation_importance(model, rows if named else rows.to_numpy(), y_rows,
                                           n_repeats=n_repeats, random_state=seed)
            perm = pl.DataFrame({"feature": in_names, "importance_mean": r.importances_mean,
                                 "importance_std": r.importances_std}).sort(
                "importance_mean", descending=True, maintain_order=True)
            notes.append(f"permutation importance: model's default score, {n_repeats} repeats, "
                         f"on the {len(rows)} explained rows")
        except Exception as exc:  # noqa: BLE001
            notes.append(f"permutation importance failed ({type(exc).__name__}: {exc})")
    return perm


def partial_dependence_of(model, rows, top, pd_target, named, is_clf, classes, binary,
                        feature_names, pd_rows, grid_resolution, seed, notes) -> dict:
    """Partial dependence (brute force, averaged) of each feature in ``top``.

    Parameters
    ----------
    model : estimator or Pipeline
        The whole model.
    rows : pandas.DataFrame
        The explained rows (original columns).
    top : list of str
        The features to compute it for; empty: nothing is computed and no note is added.
    pd_target : tuple
        ``("model", None)``: run on ``model`` over ``rows``; ``("final", (M, est))``: run on
        the final estimator ``est`` over the transformed matrix ``M`` (when the SHAP values
        are per transformed column).
    named : bool
        Whether ``model`` takes DataFrames (else numpy arrays).
    is_clf, binary : bool
        Whether the model is a classifier, and a binary one.
    classes : list or None
        The classifier's classes, recorded when the result has one curve per class.
    feature_names : list of str
        The explained feature names, to find a feature's position when columns are unnamed.
    pd_rows : int
        At most this many rows are used (a random sample drawn with ``seed``).
    grid_resolution : int
        Grid points per numerical feature.
    seed : int
        Seed of the row sample.
    notes : list of str
        Appended to, in place.

    Returns
    -------
    dict
        Feature -> ``{"grid", "average", "categorical", "response"}`` (and ``"classes"``
        when there is a curve per class), or ``{"error": ...}`` when scikit-learn failed for
        that feature.
    """
    import pandas as pd
    from sklearn.inspection import partial_dependence

    if not top:
        return {}
    if len(rows) > pd_rows:
        rng = np.random.default_rng([seed, 2])
        sub = np.sort(rng.choice(len(rows), size=pd_rows, replace=False))
    else:
        sub = np.arange(len(rows))
    if pd_target[0] == "final":
        M, est = pd_target[1]
        Xp = M[sub]
        if getattr(est, "feature_names_in_", None) is not None:
            Xp = pd.DataFrame(Xp, columns=list(est.feature_names_in_))
            feats = {f: f for f in top}
        else:
            feats = {f: feature_names.index(f) for f in top}
        cat = []
    else:
        est = model
        Xr = rows.iloc[sub].reset_index(drop=True)
        Xp = Xr if named else Xr.to_numpy()
        feats = {f: (f if named else feature_names.index(f)) for f in top}
        cat = [f for f in top if not pd.api.types.is_numeric_dtype(Xr[f])
               and not pd.api.types.is_bool_dtype(Xr[f])]
    response = "auto"
    if is_clf:
        response = "predict_proba" if hasattr(est, "predict_proba") else "decision_function"
    out = {}
    for f, key in feats.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = partial_dependence(
                    est, Xp, [key], categorical_features=[key] if f in cat else None,
                    response_method=response, grid_resolution=grid_resolution, method="brute",
                    kind="average")
            avg = np.asarray(r["average"], dtype=np.float64)
            grid = r["grid_values"][0]
            entry = {"grid": [g.item() if hasattr(g, "item") else g for g in grid],
                     "average": avg[0].tolist() if avg.shape[0] == 1 else avg.tolist(),
                     "categorical": f in cat,
                     "response": (f"{response}[:, 1]" if binary and response == "predict_proba"
                                  else (response if is_clf else "predict"))}
            if avg.shape[0] > 1 and classes is not None:
                entry["classes"] = classes
            out[f] = entry
        except Exception as exc:  # noqa: BLE001
            out[f] = {"error": f"{type(exc).__name__}: {exc}"}
    notes.append(f"partial dependence (brute force, grid {grid_resolution}) for the top "
                 f"{len(feats)} features on {len(sub)} rows")
    return out
