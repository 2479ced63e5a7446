"""Protection of the people in the data: identifying columns, pseudonyms and small groups.

Owns column marks and their detector (``column_marks``), marks kept per data set
(``dataset_marks``), keyed tokens for identifying values (``pseudonyms``), the rule that no
group smaller than the threshold is shown (``small_groups``), and the workspace's methods for
them (``api``).
"""
