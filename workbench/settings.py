"""Settings read from the environment, refused with the variable's name when malformed.

>>> import os; os.environ["WORKBENCH_DOCTEST_MINUTES"] = "30"
>>> minutes("WORKBENCH_DOCTEST_MINUTES", 60)
30.0
"""

from __future__ import annotations

import math
import os

from .errors import ValidationError


def minutes(name: str, default: float) -> float:
    """``$name`` as a positive, finite number of minutes; ``default`` when unset or blank.

    Parameters
    ----------
    name : str
        The environment variable, e.g. ``WORKBENCH_SESSION_MINUTES``.
    default : float
        The minutes when the variable is unset or blank.

    Returns
    -------
    float
        The minutes.

    Raises
    ------
    ValidationError
        The variable holds anything else; the message names it and its value.
    """
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise ValidationError(f"{name} must be a positive number of minutes, got {raw!r}.")
    return value
