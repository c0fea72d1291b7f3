"""Page-number paging: when it goes on, when it stops, and when it refuses to loop."""

from __future__ import annotations

import pytest

from analytics_client.config.model import PageNumberPaginator as Config
from analytics_client.core.errors import PaginationLoopError
from analytics_client.http.paginators import PageNumberPaginator, PageRequest, PageResponse
from tests.support import CONTRACT_PAGES


def update(p: PageNumberPaginator, body: dict, data: list) -> None:
    """One page through dlt's contract: read its state."""
    p.update_state(PageResponse(body), data)


def first_params(p: PageNumberPaginator) -> dict:
    request = PageRequest()
    p.init_request(request)
    return request.params


def paginator(**kwargs: object) -> PageNumberPaginator:
    return PageNumberPaginator("deals", Config(**{**CONTRACT_PAGES, "limit": 10, **kwargs}))


def records(n: int, start: int = 0) -> list[dict]:
    return [{"id": f"d{start + i}"} for i in range(n)]


def body(number: int, total_pages: int | None = None, next_link: object = "set") -> dict:
    doc: dict = {"data": []}
    if total_pages is not None:
        doc["meta"] = {"page": {"number": number, "total_pages": total_pages}}
    if next_link != "set":
        doc["links"] = {"next": next_link}
    return doc


def test_starts_at_page_one_with_the_page_size() -> None:
    """The first request asks for page 1 of 10."""
    assert first_params(paginator()) == {"page[number]": 1, "page[size]": 10}


def test_short_page_mid_stream_does_not_stop_when_totals_say_more() -> None:
    """A page one record short is not the end while total_pages says there is more."""
    p = paginator()
    update(p, body(1, total_pages=3, next_link="/v1/deals?page[number]=2"), records(9))
    assert p.has_next and p.page == 2


def test_stops_when_total_pages_is_reached() -> None:
    """total_pages from the latest page ends paging."""
    p = paginator()
    update(p, body(1, total_pages=2), records(10))
    update(p, body(2, total_pages=2), records(10, 10))
    assert not p.has_next


def test_total_pages_growing_during_the_run_is_followed() -> None:
    """Records created while paging add pages; the latest total wins."""
    p = paginator()
    update(p, body(1, total_pages=1 + 1), records(10))
    update(p, body(2, total_pages=3), records(10, 10))
    assert p.has_next and p.page == 3


def test_stops_on_null_next_link() -> None:
    """links.next: null is the last page."""
    p = paginator()
    update(p, body(1, next_link=None), records(10))
    assert not p.has_next


def test_stops_on_empty_page_where_links_agree() -> None:
    """An empty page whose links.next is null ends paging whatever total_pages claims."""
    p = paginator()
    update(p, body(4, total_pages=9, next_link=None), [])
    assert not p.has_next


def test_empty_page_below_total_pages_without_links_reads_on_to_the_total() -> None:
    """With total_pages alone saying more, an empty page is read past (issue 22: a page lost
    for one response is not the end); empty pages up to the total end the read."""
    p = paginator()
    for _ in range(3):  # MAX_EMPTY_PAGES: the same page again, then on
        assert p.has_next and p.page == 1
        update(p, body(1, total_pages=2), [])
    assert p.has_next and p.page == 2
    for _ in range(3):
        update(p, body(2, total_pages=2), [])
    assert p.has_next and p.page == 3
    update(p, body(3, total_pages=2), [])
    assert not p.has_next


def test_without_meta_or_links_a_short_page_ends() -> None:
    """With neither totals nor links, only a short (or empty) page can end paging."""
    p = paginator()
    update(p, {"data": []}, records(10))
    assert p.has_next
    update(p, {"data": []}, records(3, 10))
    assert not p.has_next


def test_without_a_limit_only_an_empty_page_ends() -> None:
    """When the page size is unknown a short page proves nothing."""
    p = PageNumberPaginator("deals", Config(**CONTRACT_PAGES))
    update(p, {"data": []}, records(3))
    assert p.has_next
    update(p, {"data": []}, [])
    assert not p.has_next


def test_maximum_page_stops() -> None:
    """maximum_page is the first page number not fetched (dlt's meaning: maximum_page 3 from
    page 1 reads pages 1 and 2, its test_paginators.py::test_maximum_page)."""
    p = paginator(maximum_page=3)
    update(p, body(1, total_pages=9), records(10))
    update(p, body(2, total_pages=9), records(10, 10))
    assert not p.has_next


@pytest.mark.parametrize("base_page", [0, 1])
def test_base_page_counts_pages_from_there(base_page: int) -> None:
    """With base_page 0, total_pages 2 means pages 0 and 1."""
    p = paginator(base_page=base_page)
    assert first_params(p)["page[number]"] == base_page
    update(p, body(base_page, total_pages=2), records(10))
    update(p, body(base_page + 1, total_pages=2), records(10, 10))
    assert not p.has_next


def test_same_page_twice_fails_instead_of_looping() -> None:
    """An API that ignores the page parameter is caught on the second page."""
    p = paginator()
    update(p, body(1), records(10))
    with pytest.raises(PaginationLoopError, match="deals: page 2 has exactly the records of page 1"):
        update(p, body(2), records(10))
