"""The Workbench server: one process owns the store; every client proves who it is.

Owns the HTTP API generated from the table of operations (``api``), the ASGI application that
serves it beside the dashboard on one port (``app``), and the server's claim on a DuckDB store
(:mod:`workbench.store.served`, below it in the layers, because every opener checks it).
"""
