"""Workbench: track, register, explain and govern machine-learning models.

Example::

    import workbench as wb
    ws = wb.connect(user="dana")
    with ws.start_run("credit-risk") as run:
        run.log_params({"model": "rf"})
        run.log_metrics({"auc": 0.81})
        mv = run.register_model(model, "credit-default")
"""

__version__ = "0.1.0"

from .errors import (  # noqa: E402
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
from .filterlang import FilterSyntaxError  # noqa: E402
from .datasets import DatasetRef  # noqa: E402
from .registry import ModelVersion  # noqa: E402
from .roles import ROLES  # noqa: E402
from .tracking import Run  # noqa: E402
from .workspace import Workspace, connect  # noqa: E402

__all__ = [
    "connect", "Workspace", "Run", "ModelVersion", "DatasetRef", "ROLES", "WorkbenchError", "StoreError",
    "StoreLockedError", "NotFoundError", "ValidationError", "PermissionDenied", "IntegrityError",
    "ConflictError", "KeyUnavailableError",
    "FilterSyntaxError", "__version__",
]
