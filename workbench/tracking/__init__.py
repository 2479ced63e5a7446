"""Experiment tracking: runs, their params, metrics and data sets, and finding them again.

Owns runs and their lifecycle (``runs``), data set references and fingerprints
(``datasets``), the filter language (``filterlang``), run search (``search``) and the data
for comparing runs (``compare``).
"""
