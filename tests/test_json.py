"""SELECT JSON, INSERT JSON (DEFAULT NULL / UNSET), toJson() and fromJson() as Cassandra 5.0 renders them."""
import json

import pytest
from cassandra import InvalidRequest


@pytest.fixture
def jt(session, fresh_keyspace):
    ks = fresh_keyspace
    session.execute(f'CREATE TABLE {ks}.j (k int PRIMARY KEY, t text, ts timestamp, l list<int>, m map<int, text>, "Mixed" int)')
    return ks


def test_insert_json_and_select_json(session, jt):
    session.execute(
        f"""INSERT INTO {jt}.j JSON '{{"k": 1, "t": "hi", "ts": "2021-01-02 03:04:05.000Z", "l": [1, 2], "m": {{"3": "c"}}, "\\"Mixed\\"": 9}}'"""
    )
    row = session.execute(f"SELECT JSON * FROM {jt}.j WHERE k = 1").one()
    doc = json.loads(row[0])
    assert len(row) == 1
    assert doc == {"k": 1, "\"Mixed\"": 9, "l": [1, 2], "m": {"3": "c"}, "t": "hi", "ts": "2021-01-02 03:04:05.000Z"}
    assert '"\\"Mixed\\""' in row[0]


def test_insert_json_defaults(session, jt):
    session.execute(f"""INSERT INTO {jt}.j JSON '{{"k": 2, "t": "a", "l": [5]}}'""")
    session.execute(f"""INSERT INTO {jt}.j JSON '{{"k": 2, "t": "b"}}' DEFAULT UNSET""")
    row = session.execute(f"SELECT t, l FROM {jt}.j WHERE k = 2").one()
    assert (row.t, row.l) == ("b", [5])
    session.execute(f"""INSERT INTO {jt}.j JSON '{{"k": 2, "t": "c"}}'""")
    row = session.execute(f"SELECT t, l FROM {jt}.j WHERE k = 2").one()
    assert (row.t, row.l) == ("c", None)
    ps = session.prepare(f"INSERT INTO {jt}.j JSON ?")
    session.execute(ps, [json.dumps({"k": 3, "t": "prepared"})])
    assert session.execute(f"SELECT t FROM {jt}.j WHERE k = 3").one().t == "prepared"
    with pytest.raises(InvalidRequest, match="unrecognized column"):
        session.execute(f"""INSERT INTO {jt}.j JSON '{{"k": 4, "nope": 1}}'""")


def test_tojson_and_fromjson(session, jt):
    session.execute(f"INSERT INTO {jt}.j (k, l) VALUES (5, fromJson('[7, 8]'))")
    row = session.execute(f"SELECT toJson(l) AS lj, toJson(t) AS tj FROM {jt}.j WHERE k = 5").one()
    assert (row.lj, row.tj) == ("[7, 8]", "null")
