"""Evidence about a model version: explanations, fairness and drift, and the records that keep them.

Owns SHAP explanations and their inputs (``explain``, ``explainers``, ``explain_inputs``,
``feature_space``, ``inspection``), fairness reports that equal fairlearn's (``fairness``),
data drift with Evidently's defaults and the banking PSI (``drift``, ``drift_stats``,
``drift_evidently``), and the evidence records stored against a version (``records``).
"""
