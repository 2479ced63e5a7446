"""Governance: promotion requests, four-eyes decisions, gates, rollout and rollback.

Owns requests and their rules (``requests``) and the workspace's methods for them (``api``).
"""
