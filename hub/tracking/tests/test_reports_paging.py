"""Exports of a big campaign's recipients and clicks (3.2-3.4) read chunk by chunk: each
chunk's ids first, then those rows by primary key (reports._chunks). Whole rows after an id
make MariaDB walk the campaign's index from its start at every chunk (quadratic at 1M)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext

from hub.tracking import reports


@pytest.mark.django_db
def test_chunks_read_every_row_once_in_order_and_ids_before_rows():
    names = [f"g{i:02d}" for i in range(11)]
    Group.objects.bulk_create([Group(name=n) for n in names])
    Group.objects.filter(name="g04").delete()  # a gap in the ids
    with CaptureQueriesContext(connection) as ctx:
        read = [g.name for g in reports._chunks(Group.objects.filter(name__startswith="g"), chunk=3)]
    assert read == [n for n in names if n != "g04"]
    after_an_id = [q["sql"] for q in ctx.captured_queries if " > " in q["sql"]]
    assert len(after_an_id) == 4  # 10 rows, 3 a chunk: the last chunk is short, no extra read
    for sql in after_an_id:
        columns = sql.upper().split(" FROM ")[0]
        assert "NAME" not in columns  # ids only: the index answers
