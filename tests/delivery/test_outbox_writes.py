"""What a send's writes cost SQLite: no temporary table built for each partial index.

SQLite tests `x IN (a, b, c)` (three or more) through a temporary table, and a partial
index's WHERE is tested on every row written: a send's UPDATE took 61 us with the
unfinished indexes written that way, 7 us with ORs (bench/README.md, issue #23).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from receiver.delivery.outbox import Outbox
from receiver.delivery.outbox_schema import UNFINISHED
from receiver.delivery.pipeline import Entry

MSG = {"msgtype": "text", "text": {"content": "磁盘满了"}}
OLD_WHERE = "WHERE state IN ('queued','retry','sending')"


def enqueue(box: Outbox) -> int:
    (item_id,) = box.enqueue(
        [Entry(receiver="ops", msg=MSG, userids=("a",))], source="alertmanager", group_key="g"
    )
    return item_id


def test_a_send_writes_without_a_temporary_table_per_index(tmp_path: Path) -> None:
    box = Outbox(str(tmp_path))
    db = box._db._connection()  # this thread's, which the calls below use
    seen: list[str] = []
    db.set_trace_callback(seen.append)
    item_id = enqueue(box)
    (item,) = box.claim(owner="o")
    assert box.start_call(item.id, "o", 60)
    box.mark_sent(item.id, [1001])
    db.set_trace_callback(None)
    writes = [s for s in seen if s.startswith(("INSERT INTO outbox", "UPDATE outbox SET state"))]
    assert len(writes) == 3, seen  # enqueue, the claim's lease, mark_sent
    for sql in (writes[0], writes[2]):
        ops = [r["opcode"] for r in db.execute(f"EXPLAIN {sql}")]
        # The state CHECK's list of 7, and the rows of a RETURNING: none for the indexes.
        assert ops.count("OpenEphemeral") <= 1 + ("RETURNING" in sql), sql
    assert box.get(item_id).state == "sent"  # type: ignore[union-attr]


def test_an_outbox_with_the_older_unfinished_indexes_gets_them_anew(tmp_path: Path) -> None:
    item_id = enqueue(Outbox(str(tmp_path)))
    with sqlite3.connect(tmp_path / "outbox.sqlite3") as db:  # as the version before wrote it
        db.execute("DROP INDEX outbox_unfinished")
        db.execute("DROP INDEX outbox_unfinished_id")
        db.execute(f"CREATE INDEX outbox_unfinished ON outbox (group_key, receiver) {OLD_WHERE}")
        db.execute(f"CREATE INDEX outbox_unfinished_id ON outbox (id) {OLD_WHERE}")
        db.execute("DELETE FROM schema_migrations WHERE store='outbox' AND version=2")
    box = Outbox(str(tmp_path))
    with sqlite3.connect(tmp_path / "outbox.sqlite3") as db:
        made = [r[0] for r in db.execute("SELECT sql FROM sqlite_master WHERE name LIKE ?",
                                         ("outbox_unfinished%",))]  # fmt: skip
    assert len(made) == 2 and all(s.endswith(f"WHERE {UNFINISHED}") for s in made), made
    # The claim walks outbox_unfinished_id by name: a WHERE it does not imply is an error.
    assert [i.id for i in box.claim()] == [item_id]
