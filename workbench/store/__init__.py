"""The store: where everything is kept, and the one way to write it.

Owns the schema (``schema``), the connection and its lease on a DuckDB file or a PostgreSQL
pool (``connection``), the one write path with group commit (``writer``), the tamper-evident
audit chain and its replay against the tables (``audit``, ``audit_replay``), the head mark
beside a DuckDB file and recovery from a damaged log (``headmark``, ``recovery``),
content-addressed artifact files and their encryption keys (``artifacts``, ``keys``), and the
copy of a DuckDB store into PostgreSQL (``migrate``).

Layer 2: imports only ``errors``, ``policy``, ``settings`` and ``_version`` from above it.
"""
