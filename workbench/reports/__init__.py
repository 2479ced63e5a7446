"""Reports: model cards and validation packs, and the schedules that export them.

Owns the documents (``documents``), report schedules run by the scheduler (``schedules``),
and the workspace's methods for them (``api``).
"""
