"""The Delta lake: records to typed polars frames, tables (merge, append, replace; the mark in
each commit), the quarantine, mark-only commits, maintenance and the writable-lake probe.

A table is written as its ``TableSpec`` (``tables``) says; nothing here reads a config.
"""
