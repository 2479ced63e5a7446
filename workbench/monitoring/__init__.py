"""Monitoring in production: prediction logs, windows, alerts and retraining commands.

Owns windowed drift and performance (``windows``), the prediction logs, monitor policies and
alerts in the store (``logs``), retraining commands run by the scheduler (``retrain``), and
the workspace's methods for them (``api``).
"""
