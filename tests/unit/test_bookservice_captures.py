"""BookService on the real OKX and Deribit captures: the same books and gaps as `xtrader verify`."""

from __future__ import annotations

import pytest

from tests.captures import capture_path
from xtrader.bookservice import BookService
from xtrader.venues import venue
from xtrader.verify import verify


@pytest.mark.parametrize("name", ["okx", "deribit"])
def test_book_service_builds_the_books_verify_builds(name: str) -> None:
    result = verify(capture_path(name))
    assert result.books is not None
    v = venue(name)
    services: dict[str, BookService] = {}
    rows = 0
    for conn, batches in result.batches:
        if batches.l2 is None:
            continue
        service = services.get(conn)
        if service is None:
            service = services[conn] = BookService(
                name, v.sync_kind, keep_text=v.keep_text, checksum=getattr(v, "book_checksum", None)
            )
        out = service.on_batch(conn, batches)
        assert out.l2 is not None and out.l2_rest is None
        rows += out.l2.num_rows
    assert rows == result.rows["l2"]
    checked = 0
    for (conn, symbol), sync in result.books.books.items():
        ours = services[conn].tops(10).get(symbol)
        if sync.valid:
            assert ours == sync.book.top(10), (conn, symbol)
            checked += 1
        else:
            assert ours is None
    assert checked > 0
    gaps = sum(s.stats()["counters"]["gaps"] for s in services.values())
    assert gaps == result.summary()["books"]["gaps"]
