"""The data-protection part of :class:`~workbench.workspace.Workspace`: column marks and pseudonyms.

Identifying columns are decided in one place, :meth:`PrivacyMethods._identifying`, and
replaced by keyed tokens (:mod:`workbench.protection.pseudonyms`) before any frame reaches the artifact
folder: prediction logs, labels, reference data and the per-row values of explanations.
"""

from __future__ import annotations

import json

import polars as pl

from ..datasets import DatasetRef
from ..errors import NotFoundError, ValidationError
from ..operations import READ, operation
from ..store import keys
from . import column_marks, dataset_marks, pseudonyms


class PrivacyMethods:
    """Mixed into Workspace; uses its ``_require``, ``_call``, ``_read``, ``_sync``."""

    @operation(READ, writes=False)
    def column_marks(self, dataset) -> pl.DataFrame:
        """A data set's column marks: column, mark, origin (detected, confirmed, inherited), reason, who, when.

        Parameters
        ----------
        dataset : int or DatasetRef
            The data set's id, or the ref ``log_dataset`` returned.

        Raises
        ------
        ValidationError
            ``dataset`` is neither an id nor a DatasetRef.
        NotFoundError
            The data set does not exist.
        """
        dataset_id = _dataset_id(dataset)
        self._sync()
        if self.store.scalar("select count(*) from datasets where id = ?", [dataset_id]) == 0:
            raise NotFoundError(f"Data set {dataset_id} does not exist.")
        return self._read("select column_name as \"column\", mark, origin, reason, set_by, set_at from column_marks "
                          "where dataset_id = ? order by column_name", [dataset_id])

    @operation("mark_columns", writes=True)
    def mark_columns(self, dataset, marks: dict[str, str] | None = None, *, confirm: bool = True) -> dict[str, str]:
        """Mark columns of a logged data set ({column: 'identifying' | 'sensitive' | 'none'}).

        With ``confirm`` (the default) the data set's other marks not yet confirmed (the
        detector's proposals and inherited marks) are confirmed as they stand. Data sets
        derived from this one (lineage) take the new marks for the columns they share,
        unless a person marked those there. Audited; returns {column: mark}.

        Raises
        ------
        ValidationError
            ``dataset`` is neither an id nor a DatasetRef, or ``marks`` names an unknown
            column or mark.
        NotFoundError
            The data set does not exist.
        """
        dataset_id = _dataset_id(dataset)
        self._sync()
        columns = self.store.scalar("select columns_json from datasets where id = ?", [dataset_id])
        if columns is None:
            raise NotFoundError(f"Data set {dataset_id} does not exist.")
        checked = column_marks.check(marks or {}, list(json.loads(columns)))
        return self._call(lambda conn: dataset_marks.set_marks(conn, self.user, self.role, dataset_id, checked, confirm))

    def _marks(self, frame: pl.DataFrame, name: str, version: int, marks: dict | None) -> dict[str, str]:
        """{column: mark} for ``frame``: the caller's marks, else those of the version's data
        sets (through its run), else the detector's reading of this frame."""
        given = column_marks.check(marks or {}, frame.columns)
        logged = dataset_marks.strongest(self._read(dataset_marks.VERSION_MARKS_SQL, [name, version]).rows())
        detected = {c: m for c, (m, _) in column_marks.detect(frame).items()}
        decided = {**detected, **logged, **given}
        return {c: decided[c] for c in frame.columns if c in decided}

    def _identifying(self, frame: pl.DataFrame, name: str, version: int, marks: dict | None) -> list[str]:
        """Columns of ``frame`` to pseudonymise (see :meth:`_marks`)."""
        return [c for c, m in self._marks(frame, name, version, marks).items() if m == "identifying"]

    def _pseudonymise(self, frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
        return pseudonyms.pseudonymise(frame, columns, keys.pseudonym_key()) if columns else frame


def _dataset_id(dataset) -> int:
    if isinstance(dataset, DatasetRef):
        return dataset.id
    if isinstance(dataset, bool) or not isinstance(dataset, int):
        raise ValidationError(f"Give a data set id or the DatasetRef log_dataset returned, not {type(dataset).__name__}.")
    return dataset
