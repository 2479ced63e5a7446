"""The model registry: registered models, their versions, stages and aliases (``models``).

A version's model file is kept content-addressed in the store's artifact folder, saved with
skops by default.
"""
