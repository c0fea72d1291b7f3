"""The mark stores that keep marks as Prefect blocks (``SyncMark``, blocks.py).

``PrefectMarkStore`` goes through Prefect's client (a flow run); ``CommandMarkStore`` through a
``CommandApi`` (the command line, without Prefect's temporary server). Both name blocks and
refuse another pipeline's mark as state/marks.py says; the stores without Prefect live there.
Prefect itself is imported when a store is made, not with this module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from analytics_client.state.marks import Mark, block_name, load_named

if TYPE_CHECKING:
    from analytics_client.orchestration.api import CommandApi

__all__ = ["CommandMarkStore", "PrefectMarkStore"]


class PrefectMarkStore:
    """Marks as ``SyncMark`` block documents on the Prefect API (editable in the UI).

    When the Prefect API goes away mid-run, each call here fails within a bounded wait with a
    ``PrefectUnavailableError`` that says the data is safe (prefect_api.py).
    """

    def __init__(self) -> None:
        from analytics_client.orchestration.blocks import SyncMark

        self._block = SyncMark
        # Once, before tasks fan out: concurrent first saves of an unregistered type collide.
        self._call("-", SyncMark.register_type_and_schema)

    def load(self, pipeline: str, resource: str) -> Mark | None:
        def read(name: str) -> Mark | None:
            try:
                block: Any = self._call(resource, lambda: self._block.load(name))
            except ValueError:  # "Unable to find block document named ..."
                return None
            return Mark.model_validate(block.model_dump(include=set(Mark.model_fields)))

        return load_named(read, pipeline, resource)

    def save(self, mark: Mark) -> None:
        block = self._block(**mark.model_dump())
        self._call(mark.resource, lambda: block.save(block_name(mark.pipeline, mark.resource),
                                                     overwrite=True))

    @staticmethod
    def _call(resource: str, function: Callable[[], _T]) -> _T:
        """``function()`` with Prefect's client retries bounded; an outage named as such."""
        import analytics_client.orchestration.api as prefect_api

        return prefect_api.call(resource, function)


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
