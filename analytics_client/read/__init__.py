"""Reading a resource: its plan (``plan``, resolved once from the config) and the page sources
a plan names -- the paginator's read, the keyset walk, sliced walks, lagged re-reads and
backfills, and a child's reads per changed parent. Each yields ``pages.Page`` values.
"""
