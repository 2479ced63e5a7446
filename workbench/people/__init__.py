"""People: who may do what.

Owns the permission table and role names (``roles``), user records and password rules
(``users``), and signing in, sessions and throttling (``auth``).
"""
