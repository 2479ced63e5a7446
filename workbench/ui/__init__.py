"""What the dashboard draws: widgets and URL state (``widgets``) and charts (``compare_charts``,
``evidence_charts``, ``monitor_charts``). Pages lay out what services return; no rule lives here.
"""
