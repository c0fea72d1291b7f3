"""The bottom layer: what every other layer may use and which uses none of them.

The exception tree (``errors``), exact JSON (``jsontext``), the cursor codec (``cursors``, with
``timestamps`` for instants), JSON paths, dlt's placeholders, windows, the run's timing knobs,
result records (``summary``), file locks and the stop flag. Nothing here reads a config or
talks to the API, the lake or Prefect.
"""
