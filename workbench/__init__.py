"""Workbench: track, register, explain and govern machine-learning models.

Example::

    import workbench as wb
    ws = wb.connect(user="dana")
    with ws.start_run("credit-risk") as run:
        run.log_params({"model": "rf"})
        run.log_metrics({"auc": 0.81})
        mv = run.register_model(model, "credit-default")
"""

from ._version import __version__
from .datasets import DatasetRef
from .errors import (
    AuthenticationError,
    ConflictError,
    IntegrityError,
    KeyUnavailableError,
    NotFoundError,
    PermissionDenied,
    StoreError,
    StoreLockedError,
    ValidationError,
    WorkbenchError,
)
from .people.roles import ROLES
from .registry.models import ModelVersion
from .store.schema import RequestStatus, RunStatus, Stage
from .tracking.filterlang import FilterSyntaxError
from .tracking.runs import Run
from .workspace import Workspace, connect

__all__ = [
    "connect", "Workspace", "Run", "ModelVersion", "DatasetRef", "ROLES", "WorkbenchError", "StoreError",
    "StoreLockedError", "NotFoundError", "ValidationError", "PermissionDenied", "IntegrityError",
    "ConflictError", "KeyUnavailableError", "AuthenticationError",
    "FilterSyntaxError", "RequestStatus", "RunStatus", "Stage", "__version__",
]
