"""Verdict thresholds per risk tier: the one place evidence is judged.

A report stores the thresholds it was judged by, so a verdict can be read later exactly
as it was reached. (Approval gates reuse these; making them editable per store is the
governance issue's work.)

>>> fairness_verdict({"demographic_parity_ratio": 0.9, "equalized_odds_difference": 0.05,
...                   "four_fifths": {"passed": True}}, "high")[0]
'pass'
"""

from __future__ import annotations

import math

#: risk tier -> fairness thresholds. None: not checked for that tier.
FAIRNESS = {
    "high": {"min_demographic_parity_ratio": 0.8, "max_equalized_odds_difference": 0.1, "four_fifths": True},
    "medium": {"min_demographic_parity_ratio": 0.8, "max_equalized_odds_difference": 0.2, "four_fifths": True},
    "low": {"min_demographic_parity_ratio": 0.7, "max_equalized_odds_difference": None, "four_fifths": False},
}


#: risk tier -> drift thresholds: the share of drifted columns a version may show, whether
#: drift of the target or the prediction alone fails it, and the share of the columns asked
#: for that must have been tested at all (a report whose columns are mostly empty or
#: mismatched says little: a drift share of 0 over 5 of 15 columns must not pass).
DRIFT = {
    "high": {"max_drift_share": 0.25, "prediction_drift_fails": True, "min_tested_share": 0.5},
    "medium": {"max_drift_share": 0.5, "prediction_drift_fails": False, "min_tested_share": 0.5},
    "low": {"max_drift_share": 0.5, "prediction_drift_fails": False, "min_tested_share": 0.5},
}


def drift_verdict(summary: dict, risk_tier: str) -> tuple[str, dict, list[str]]:
    """('pass' | 'fail', the thresholds used, reasons) for a drift report's summary.

    Fails when too many columns drifted, when the prediction drifted (high tier), and when
    fewer than ``min_tested_share`` of the columns asked for could be tested (the others
    are in the summary's ``not_tested``: empty after dropping missing values, mismatched
    types, on one side only).

    >>> drift_verdict({"drift_share": 0.3, "n_drifted": 3, "n_tested": 10, "prediction_drift": None}, "high")[::2]
    ('fail', ['3 of 10 columns drifted (share 0.300 >= 0.25)'])
    >>> drift_verdict({"drift_share": 0.0, "n_drifted": 0, "n_tested": 5, "prediction_drift": None,
    ...                "not_tested": [{"column": "x", "reason": "no values left"}] * 10}, "low")[::2]
    ('fail', ['only 5 of 15 columns could be tested (share 0.333 < 0.5): x (no values left), x (no values left), x (no values left) ...'])
    """
    rules = dict(DRIFT[risk_tier], risk_tier=risk_tier)
    reasons = []
    skipped = summary.get("not_tested") or []
    too_few = coverage_problem(summary["n_tested"], summary["n_tested"] + len(skipped), risk_tier)
    if too_few:
        named = ", ".join(f"{r['column']} ({r['reason']})" for r in skipped[:3]) + (" ..." if len(skipped) > 3 else "")
        reasons.append(f"{too_few}: {named}")
    if summary["drift_share"] >= rules["max_drift_share"]:
        reasons.append(f"{summary['n_drifted']} of {summary['n_tested']} columns drifted "
                       f"(share {summary['drift_share']:.3f} >= {rules['max_drift_share']})")
    if rules["prediction_drift_fails"] and summary.get("prediction_drift"):
        reasons.append("the prediction drifted")
    return ("fail" if reasons else "pass"), rules, reasons


def coverage_problem(n_tested: int, n_asked: int, risk_tier: str) -> str | None:
    """Why a drift report that tested ``n_tested`` of ``n_asked`` columns cannot be judged, or None.

    >>> coverage_problem(5, 15, "low")
    'only 5 of 15 columns could be tested (share 0.333 < 0.5)'
    >>> coverage_problem(15, 15, "low") is None
    True
    """
    least = DRIFT[risk_tier]["min_tested_share"]
    if n_asked and n_tested / n_asked < least:
        return f"only {n_tested} of {n_asked} columns could be tested (share {n_tested / n_asked:.3f} < {least})"
    return None


def _number(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def fairness_verdict(summary: dict, risk_tier: str) -> tuple[str, dict, list[str]]:
    """('pass' | 'fail' | 'review', the thresholds used, reasons). Undefined numbers never pass.

    Parameters
    ----------
    summary : dict
        A fairness report's summary: ``demographic_parity_ratio``,
        ``equalized_odds_difference`` and the ``four_fifths`` screen.
    risk_tier : str
        The model's tier, which picks the thresholds in :data:`FAIRNESS`.

    Returns
    -------
    tuple
        ``'fail'`` when a threshold is broken (reasons first, then what was undefined);
        else ``'review'`` when something could not be judged; else ``'pass'``.
    """
    rules = dict(FAIRNESS[risk_tier], risk_tier=risk_tier)
    reasons, undefined = [], []
    ratio = _number(summary.get("demographic_parity_ratio"))
    if ratio is None:
        undefined.append("demographic parity ratio is undefined")
    elif ratio < rules["min_demographic_parity_ratio"]:
        reasons.append(f"demographic parity ratio {ratio:.3f} < {rules['min_demographic_parity_ratio']}")
    if rules["max_equalized_odds_difference"] is not None:
        eod = _number(summary.get("equalized_odds_difference"))
        if eod is None:
            undefined.append("equalized odds difference is undefined")
        elif eod > rules["max_equalized_odds_difference"]:
            reasons.append(f"equalized odds difference {eod:.3f} > {rules['max_equalized_odds_difference']}")
    if rules["four_fifths"]:
        screen = summary.get("four_fifths") or {}
        if screen.get("passed") is False:
            reasons.append(f"four-fifths screen failed (lowest impact ratio {screen.get('min_impact_ratio', float('nan')):.3f}, "
                           f"group {screen.get('worst_group')})")
        elif screen.get("passed") is None:
            undefined.append("four-fifths screen could not judge: " + str(screen.get("reason")))
    if reasons:
        return "fail", rules, reasons + undefined
    return ("review", rules, undefined) if undefined else ("pass", rules, [])
