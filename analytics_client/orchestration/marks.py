"""The mark stores that keep marks as Prefect blocks (``SyncMark``, blocks.py).

``PrefectMarkStore`` goes through Prefect's client (a flow run); ``CommandMarkStore`` through a
``CommandApi`` (the command line, without Prefect's temporary server). Both name blocks and
refuse another pipeline's mark as state/marks.py says; the stores without Prefect live there.
Prefect itself is imported when a store is made, not with this module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from analytics_client.core.errors import PrefectUnavailableError
from analytics_client.state.marks import Mark, block_name, load_named

if TYPE_CHECKING:
    from uuid import UUID

    from prefect.client.schemas.objects import BlockDocument

    from analytics_client.orchestration.api import CommandApi

__all__ = ["CommandMarkStore", "PrefectMarkStore"]


class PrefectMarkStore:
    """Marks as ``SyncMark`` block documents on the Prefect API (editable in the UI).

    One API call per load and per save. ``Block.save(overwrite=True)`` made seven (it registers
    the block type and schema again, tries a create that conflicts, reads the document by name,
    updates it and reads it back): with five resources saving at once against a temporary
    server's SQLite, a run that changed nothing spent 3-4 s in them. The type and schema are
    registered once, when the store is made; a save updates the document a load found, by id.
    A save that meets the server's SQLite lock (held by its own writers: the run's task states
    and logs) is answered 503 and retried by Prefect's client about 2 s later: a no-op run's
    five saves at once cost one such wait (2.5 s of its sync, measured), one at a time four.

    When the Prefect API goes away mid-run, each call here fails within a bounded wait with a
    ``PrefectUnavailableError`` that says the data is safe (prefect_api.py).
    """

    def __init__(self) -> None:
        from analytics_client.orchestration.blocks import SyncMark

        self._block = SyncMark
        self._ids: dict[str, UUID] = {}  # block document name -> id, as loaded or created
        self._gone: PrefectUnavailableError | None = None  # the outage a call ran into
        # Once, before tasks fan out: concurrent first saves of an unregistered type collide.
        self._call("-", SyncMark.register_type_and_schema)

    def load(self, pipeline: str, resource: str) -> Mark | None:
        def read(name: str) -> Mark | None:
            document = self._call(resource, lambda: self._read(name))
            if document is None:
                return None
            self._ids[name] = document.id
            return Mark.model_validate({k: v for k, v in document.data.items()
                                        if k in Mark.model_fields})

        return load_named(read, pipeline, resource)

    def save(self, mark: Mark) -> None:
        name = block_name(mark.pipeline, mark.resource)
        document = self._block(**mark.model_dump())._to_block_document(name=name)
        self._ids[name] = self._call(mark.resource, lambda: self._write(name, document))

    def _read(self, name: str) -> BlockDocument | None:
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound

        with get_client(sync_client=True) as client:
            try:
                return client.read_block_document_by_name(name, self._block.get_block_type_slug())
            except ObjectNotFound:
                return None

    def _write(self, name: str, document: BlockDocument) -> UUID:
        """Update the document by id when it is known, else create it (by name if it exists)."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import BlockDocumentCreate, BlockDocumentUpdate
        from prefect.exceptions import ObjectAlreadyExists

        update = BlockDocumentUpdate(block_schema_id=document.block_schema_id, data=document.data,
                                     merge_existing_data=False)
        with get_client(sync_client=True) as client:
            known = self._ids.get(name)
            if known is None:
                try:
                    return client.create_block_document(BlockDocumentCreate(
                        name=name, block_schema_id=document.block_schema_id,
                        block_type_id=document.block_type_id, data=document.data)).id
                except ObjectAlreadyExists:  # saved since this store loaded (another run)
                    known = client.read_block_document_by_name(
                        name, self._block.get_block_type_slug()).id
            client.update_block_document(known, update)
            return known

    def _call(self, resource: str, function: Callable[[], _T]) -> _T:
        """``function()`` with Prefect's client retries bounded; an outage named as such.

        Once a call found the API gone, the next ones fail at once: each would wait out the
        same bounded retries (about 30 s) in turn behind the save lock, and a run whose server
        died took 500 s to end (measured, five resources).
        """
        import analytics_client.orchestration.api as prefect_api

        if self._gone is not None:
            raise PrefectUnavailableError(resource, self._gone.api_url, self._gone.cause)
        try:
            return prefect_api.call(resource, function)
        except PrefectUnavailableError as exc:
            self._gone = exc
            raise


_T = TypeVar("_T")


class CommandMarkStore:
    """``SyncMark`` block documents through a ``CommandApi``: ``state show|reset`` without
    starting Prefect's temporary server (analytics_client/orchestration/api.py says why)."""

    def __init__(self, api: CommandApi) -> None:
        from analytics_client.orchestration.blocks import SyncMark

        self._block = SyncMark
        self._api = api

    def load(self, pipeline: str, resource: str) -> Mark | None:
        def read(name: str) -> Mark | None:
            data = self._api.block_data(name, self._block.get_block_type_slug())
            if data is None:
                return None
            return Mark.model_validate({k: v for k, v in data.items() if k in Mark.model_fields})

        return load_named(read, pipeline, resource)

    def save(self, mark: Mark) -> None:
        self._api.save_block(self._block(**mark.model_dump()),
                             block_name(mark.pipeline, mark.resource))
