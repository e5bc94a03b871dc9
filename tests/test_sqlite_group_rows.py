"""The group writer binds its rows as sqlite3 binds fastest (gateway/store/sqlite/group.py, ``_bindable``) and
stores exactly what binding every value as it is would store.

A column ``None`` in every row of a chunk is left out of the statement and ``bytes`` go in as ``bytearray``:
held here, over arbitrary chunks of every table the writer fills, to the plain statement (the same rows, the
same values, the same storage classes, the same refusal of a row a constraint refuses); and the tables to
declaring no DEFAULT, on which leaving a column out depends.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.store import rows
from gateway.store.sqlite import group
from gateway.store.sqlite.schema import migrate

TABLES = {"audit": rows.AUDIT_INSERT_COLUMNS, "audit_urls": rows.AUDIT_URL_COLUMNS, "raw_log": rows.RAW_COLUMNS}
_VALUE = st.one_of(
    st.none(), st.none(), st.binary(max_size=40), st.text(max_size=10), st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False), st.sampled_from([b"", "", 0, 0.0, -0.0]),
)  # fmt: skip


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(":memory:", isolation_level=None)
    migrate(connection)
    yield connection
    connection.close()


def _plain(conn: sqlite3.Connection, table: str, columns: Sequence[str], values: Sequence[tuple[Any, ...]]) -> None:
    """The statement as it was: every column named, every value bound as it is."""
    row = "(" + ", ".join("?" for _ in columns) + ")"
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join(row for _ in values)}"  # noqa: S608
    conn.execute(sql, [v for item in values for v in item])


def _stored(conn: sqlite3.Connection, table: str, columns: Sequence[str]) -> list[tuple[Any, ...]]:
    typed = ", ".join(f"{c}, typeof({c})" for c in columns)
    return sorted(conn.execute(f"SELECT {typed} FROM {table}").fetchall(), key=repr)  # noqa: S608


def _outcome(conn: sqlite3.Connection, write: Any, table: str, values: list[tuple[Any, ...]]) -> object:
    columns = TABLES[table]
    conn.execute(f"DELETE FROM {table}")  # noqa: S608
    try:
        write(conn, table, columns, values)
    except sqlite3.Error as refused:
        return type(refused)
    return _stored(conn, table, columns)


@st.composite
def _chunks(draw: st.DrawFn) -> tuple[str, list[tuple[Any, ...]]]:
    table = draw(st.sampled_from(sorted(TABLES)))
    width = len(TABLES[table])
    size = draw(st.integers(1, 12))
    # Some columns all None, some all bytes, the rest mixed: each way a column is bound.
    kinds = draw(st.lists(st.sampled_from(["none", "bytes", "mixed", "text"]), min_size=width, max_size=width))
    made = {"none": st.none(), "bytes": st.binary(max_size=40), "mixed": _VALUE, "text": st.text(max_size=10)}
    chunk = [tuple(draw(made[kind]) for kind in kinds) for _ in range(size)]
    if table == "audit" and draw(st.booleans()):  # mostly distinct positions: rows the table takes
        at = TABLES[table].index("seq")
        chunk = [(*row[:at], i + 1, *row[at + 1 :]) for i, row in enumerate(chunk)]
    return table, chunk


@settings(max_examples=400, deadline=None)
@given(_chunks())
def test_the_rows_stored_are_those_binding_every_value_as_it_is_stores(
    chunk: tuple[str, list[tuple[Any, ...]]],
) -> None:
    table, values = chunk
    connection = sqlite3.connect(":memory:", isolation_level=None)
    try:
        migrate(connection)
        assert _outcome(connection, group._insert_rows, table, values) == _outcome(connection, _plain, table, values)
    finally:
        connection.close()


def test_a_typical_issuance_chunk_leaves_out_its_null_columns_and_binds_blobs_as_bytearray() -> None:
    columns = ("time", "event", "client_ip", "personal")
    chunk = [(1.5, "url:issued", None, b"\x00\x01"), (2.5, "url:issued", None, None)]
    names, params = group._bindable(columns, chunk)
    assert names == ["time", "event", "personal"]
    assert params == [1.5, "url:issued", bytearray(b"\x00\x01"), 2.5, "url:issued", None]
    assert type(params[2]) is bytearray


def test_a_chunk_of_nothing_but_nulls_still_names_its_first_column() -> None:
    names, params = group._bindable(("time", "event"), [(None, None)])
    assert (names, params) == (["time"], [None])


@pytest.mark.parametrize("table", sorted(TABLES))
def test_no_column_the_writer_fills_has_a_default(conn: sqlite3.Connection, table: str) -> None:
    """A column left out is NULL only while the table declares no DEFAULT for it."""
    declared = {row[1]: row[4] for row in conn.execute(f"PRAGMA table_info({table})")}
    assert {name: declared[name] for name in TABLES[table]} == dict.fromkeys(TABLES[table])
