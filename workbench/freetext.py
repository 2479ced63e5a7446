"""The one limit on free text that people write into the store.

Tags, request justifications, comments, decision comments and override reasons, withdrawal,
rollback and stage-change reasons, model card text and a model's description, use case and
owner team, and a param's value, are all checked here, against one limit (MLflow's for params
too): a store, its audit payloads and the pages that
show them are never asked to hold megabytes of text a person cannot have typed.

>>> check_text("Comment", "looks fine")
'looks fine'
"""

from __future__ import annotations

from .errors import ValidationError

#: The most characters any free-text field keeps.
MAX_TEXT = 6000


def check_text(what: str, text: str | None) -> str | None:
    """``text`` unchanged, or a refusal naming ``what`` when it is longer than :data:`MAX_TEXT`.

    Parameters
    ----------
    what : str
        The field as the user knows it, e.g. ``"Comment"`` or ``"Tag 'ticket'"``.
    text : str or None
        The text as given; None (nothing written) passes.

    Returns
    -------
    str or None
        ``text`` itself.

    Raises
    ------
    ValidationError
        When ``text`` has more than :data:`MAX_TEXT` characters; the message gives both numbers.
    """
    if isinstance(text, str) and len(text) > MAX_TEXT:  # other types are their callers' to refuse
        raise ValidationError(f"{what} is {len(text):,} characters; free text is limited to {MAX_TEXT:,} "
                              "characters. Nothing of this call was stored.")
    return text
