"""Which rows of an append batch are new versions: each version, (key, cursor), once.

dlt's append with an incremental cursor: a record read again at a page edge, or in a lagged
re-read, is the same version and is not appended again; a changed record has a new cursor and
lands (docs/data-model.md, "append tables keep every version"). Without a cursor column every
read appends, as dlt's append does: nothing says two reads are one version.
"""

from __future__ import annotations

import polars as pl
from deltalake import DeltaTable

from analytics_client.lake.lakes import lake_errors

__all__ = ["new_versions"]


def new_versions(frame: pl.DataFrame, table: DeltaTable | None, *, resource: str, uri: str,
                 key: list[str], primary_key: str, cursor: str | None) -> pl.DataFrame:
    """The rows of ``frame`` whose (``key``..., ``cursor``) is neither earlier in ``frame`` nor
    in ``table``; ``frame`` itself without a cursor.

    Earlier batches of a run are committed before the next is written, so the table check
    covers them too. It reads only the key and cursor columns of rows whose primary key is the
    batch's and whose cursor lies in the batch's range (file statistics prune the rest: an
    append table's files follow the cursor), never the whole table. A null cursor
    (``cursor_nullable``) counts as one version per key. Raises ``LakeError`` when the table
    cannot be read.
    """
    if cursor is None or cursor not in frame.columns or frame.is_empty():
        return frame
    version = [*key, cursor]
    frame = frame.unique(subset=version, keep="first", maintain_order=True)
    if table is None:
        return frame
    wanted = pl.col(primary_key).is_in(frame.get_column(primary_key).unique().implode())
    low, high = frame.get_column(cursor).min(), frame.get_column(cursor).max()
    in_range = pl.col(cursor).is_between(low, high) if low is not None else pl.lit(False)
    if frame.get_column(cursor).null_count():
        in_range = in_range | pl.col(cursor).is_null()
    with lake_errors(resource, f"reading the versions of {uri} this batch has"):
        held = pl.scan_delta(table).filter(wanted & in_range).select(version).unique().collect()
    if held.is_empty():
        return frame
    held = held.cast({c: frame.schema[c] for c in version})
    return frame.join(held, on=version, how="anti", nulls_equal=True, maintain_order="left")
