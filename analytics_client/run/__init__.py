"""A run: the one batch/commit loop (``sync``), the run's shared parts (``session``: lock,
client, budget, marks, plans), progress, ``check``, and what a fan-out runs.
"""
