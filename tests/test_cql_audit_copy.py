"""cqlsh COPY TO / COPY FROM (Cassandra 5.0's cqlsh, from PyPI) against the node.

COPY TO reads the table with token-range SELECTs (`WHERE token(k) > ? AND token(k) <= ?`,
paged) from worker processes and writes CSV; COPY FROM parses the CSV, converts each field with
the column types read from the schema metadata and writes with prepared INSERTs grouped in
UNLOGGED BATCHes per replica. A round trip through a CSV file must reproduce the table exactly:
text with commas, double quotes (escaped with cqlsh's default ESCAPE '\\') and CQL-looking
punctuation, ints, uuids, timestamps, collections in CQL literal syntax, and null as an empty
field."""

from __future__ import annotations

import csv
import uuid
from datetime import datetime

from test_cqlsh import cqlsh_home, ok, run_cqlsh  # noqa: F401 - cqlsh_home is a fixture

ROWS = [
    # k, name, n, id, ts, tags, attrs
    (1, 'plain', 10, uuid.UUID("3f1b6c56-9f3c-4a57-8a0c-6f1f4a0e0001"),
     datetime(2024, 1, 2, 3, 4, 5), ["a", "b"], {"x": 1, "y": 2}),
    (2, 'comma, and "quotes"', -7, uuid.UUID("3f1b6c56-9f3c-4a57-8a0c-6f1f4a0e0002"),
     datetime(1999, 12, 31, 23, 59, 59, 123000), ["with, comma", 'q"uote'], {"k,1": -1}),
    (3, None, None, None, None, None, None),
    (4, "it's; {not: a map}", 2147483647, uuid.UUID("3f1b6c56-9f3c-4a57-8a0c-6f1f4a0e0004"),
     datetime(2030, 6, 15, 0, 0, 0), [], {}),
    (5, "ünïcödé ✓", 0, uuid.UUID("3f1b6c56-9f3c-4a57-8a0c-6f1f4a0e0005"),
     datetime(1970, 1, 1, 0, 0, 0), ["only"], {"z": 0}),
]


def normalise(row):
    k, name, n, id_, ts, tags, attrs = row
    # empty collections are null in Cassandra
    return (k, name, n, id_, ts, list(tags) if tags else None, dict(attrs) if attrs else None)


def table_rows(session, table):
    rows = session.execute(f"SELECT k, name, n, id, ts, tags, attrs FROM {table}")
    return sorted((normalise(tuple(r)) for r in rows), key=lambda r: r[0])


def test_copy_to_and_from_round_trip(node, session, fresh_keyspace, cqlsh_home, tmp_path):  # noqa: F811
    ks = fresh_keyspace
    cols = "k int PRIMARY KEY, name text, n int, id uuid, ts timestamp, tags list<text>, attrs map<text, int>"
    session.execute(f"CREATE TABLE {ks}.src ({cols})")
    session.execute(f"CREATE TABLE {ks}.dst ({cols})")
    ins = session.prepare(f"INSERT INTO {ks}.src (k, name, n, id, ts, tags, attrs) VALUES (?, ?, ?, ?, ?, ?, ?)")
    for r in ROWS:
        session.execute(ins, r)
    # enough partitions that COPY TO's token ranges split them among several ranges, and
    # PAGESIZE = 7 makes it page inside the ranges
    for k in range(100, 160):
        session.execute(ins, (k, f"bulk {k}", k, uuid.UUID(int=k), datetime(2020, 1, 1), [str(k)], {"k": k}))
    expected = table_rows(session, f"{ks}.src")
    assert len(expected) == 65

    out_file = tmp_path / "export.csv"
    out = ok(run_cqlsh(node, cqlsh_home, "-e",
                       f"COPY {ks}.src (k, name, n, id, ts, tags, attrs) TO '{out_file}' "
                       "WITH HEADER = true AND PAGESIZE = 7"))
    assert "65 rows exported" in out, out

    with open(out_file, newline="", encoding="utf-8") as f:
        # cqlsh's default dialect: QUOTE '"', ESCAPE '\\' (a quote inside a field is \\")
        records = list(csv.reader(f, escapechar="\\", doublequote=False))
    assert records[0] == ["k", "name", "n", "id", "ts", "tags", "attrs"]
    by_key = {int(r[0]): r for r in records[1:]}
    assert len(by_key) == 65
    # the CSV module undoes the quoting: the text comes back verbatim
    assert by_key[2][1] == 'comma, and "quotes"'
    assert by_key[4][1] == "it's; {not: a map}"
    assert by_key[2][3] == "3f1b6c56-9f3c-4a57-8a0c-6f1f4a0e0002"
    # a null is an empty field
    assert by_key[3][1:] == ["", "", "", "", "", ""]
    # collections are written as CQL literals, timestamps with their zone
    assert by_key[1][5] == "['a', 'b']"
    assert by_key[1][6] == "{'x': 1, 'y': 2}"
    assert by_key[1][4].startswith("2024-01-02 03:04:05"), by_key[1][4]

    out = ok(run_cqlsh(node, cqlsh_home, "-e",
                       f"COPY {ks}.dst (k, name, n, id, ts, tags, attrs) FROM '{out_file}' WITH HEADER = true"))
    assert "65 rows imported" in out, out
    assert table_rows(session, f"{ks}.dst") == expected


def test_copy_from_hand_written_csv(node, session, fresh_keyspace, cqlsh_home, tmp_path):  # noqa: F811
    """COPY FROM a file written by hand (column subset, header, quoted fields)."""
    ks = fresh_keyspace
    session.execute(f"CREATE TABLE {ks}.p (id uuid, seq int, note text, score double, "
                    "PRIMARY KEY (id, seq))")
    ids = [uuid.uuid4() for _ in range(3)]
    f = tmp_path / "in.csv"
    f.write_text(
        "id,seq,note\n"
        f"{ids[0]},1,\"hello, world\"\n"
        f"{ids[0]},2,\"say \\\"hi\\\"\"\n"
        f"{ids[1]},1,\n"
        f"{ids[2]},7,plain\n",
        encoding="utf-8",
    )
    out = ok(run_cqlsh(node, cqlsh_home, "-e",
                       f"COPY {ks}.p (id, seq, note) FROM '{f}' WITH HEADER = true"))
    assert "4 rows imported" in out, out
    got = {(r.id, r.seq): (r.note, r.score) for r in session.execute(f"SELECT * FROM {ks}.p")}
    assert got == {
        (ids[0], 1): ("hello, world", None),
        (ids[0], 2): ('say "hi"', None),
        (ids[1], 1): (None, None),
        (ids[2], 7): ("plain", None),
    }
