"""Lightweight transactions and counters on one node, with Cassandra's [applied] results."""
from concurrent.futures import ThreadPoolExecutor

import pytest
from cassandra import InvalidRequest
from cassandra.query import BatchStatement, BatchType


@pytest.fixture
def users(session, fresh_keyspace):
    session.execute(f"CREATE TABLE {fresh_keyspace}.users (id int PRIMARY KEY, name text, age int, tags map<text, int>)")
    return fresh_keyspace


def test_insert_if_not_exists_returns_current_row(session, users):
    r = session.execute(f"INSERT INTO {users}.users (id, name, age) VALUES (1, 'ann', 30) IF NOT EXISTS")
    assert r.was_applied and list(r.one()._fields) == ["applied"]
    r = session.execute(f"INSERT INTO {users}.users (id, name, age) VALUES (1, 'bob', 40) IF NOT EXISTS")
    assert not r.was_applied
    row = r.one()
    assert (row.id, row.name, row.age) == (1, "ann", 30)
    assert session.execute(f"SELECT name FROM {users}.users WHERE id = 1").one().name == "ann"


def test_update_if_conditions(session, users):
    session.execute(f"INSERT INTO {users}.users (id, name, age, tags) VALUES (2, 'cy', 20, {{'a': 1}})")
    r = session.execute(f"UPDATE {users}.users SET age = 21 WHERE id = 2 IF age = 20 AND name = 'cy'")
    assert r.was_applied
    r = session.execute(f"UPDATE {users}.users SET age = 22 WHERE id = 2 IF age < 10")
    assert not r.was_applied and r.one().age == 21
    r = session.execute(f"UPDATE {users}.users SET age = 23 WHERE id = 2 IF tags['a'] = 1 AND age IN (5, 21)")
    assert r.was_applied
    r = session.execute(f"UPDATE {users}.users SET age = 1 WHERE id = 99 IF EXISTS")
    assert not r.was_applied
    assert session.execute(f"SELECT * FROM {users}.users WHERE id = 99").one() is None
    r = session.execute(f"DELETE FROM {users}.users WHERE id = 2 IF name != 'cy'")
    assert not r.was_applied and r.one().name == "cy"
    assert session.execute(f"DELETE FROM {users}.users WHERE id = 2 IF EXISTS").was_applied
    assert session.execute(f"SELECT * FROM {users}.users WHERE id = 2").one() is None


def test_concurrent_insert_if_not_exists_applies_once(session, users):
    ps = session.prepare(f"INSERT INTO {users}.users (id, name) VALUES (?, ?) IF NOT EXISTS")
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: session.execute(ps, (7, f"n{i}")).was_applied, range(40)))
    assert results.count(True) == 1


def test_conditional_batch_single_partition(session, fresh_keyspace):
    ks = fresh_keyspace
    session.execute(f"CREATE TABLE {ks}.acct (owner text, item text, qty int, PRIMARY KEY (owner, item))")
    session.execute(f"INSERT INTO {ks}.acct (owner, item, qty) VALUES ('o', 'x', 1)")
    b = f"""BEGIN BATCH
        UPDATE {ks}.acct SET qty = 2 WHERE owner = 'o' AND item = 'x' IF qty = 1
        INSERT INTO {ks}.acct (owner, item, qty) VALUES ('o', 'y', 5)
    APPLY BATCH"""
    assert session.execute(b).was_applied
    r = session.execute(b)
    assert not r.was_applied
    assert session.execute(f"SELECT qty FROM {ks}.acct WHERE owner = 'o' AND item = 'x'").one().qty == 2
    with pytest.raises(InvalidRequest, match="cannot span multiple partitions"):
        session.execute(f"""BEGIN BATCH
            UPDATE {ks}.acct SET qty = 3 WHERE owner = 'o' AND item = 'x' IF qty = 2
            UPDATE {ks}.acct SET qty = 3 WHERE owner = 'p' AND item = 'x' IF qty = 2
        APPLY BATCH""")


def test_counters(session, fresh_keyspace):
    ks = fresh_keyspace
    session.execute(f"CREATE TABLE {ks}.hits (page text PRIMARY KEY, views counter, likes counter)")
    inc = session.prepare(f"UPDATE {ks}.hits SET views = views + ?, likes = likes - 1 WHERE page = ?")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: session.execute(inc, (2, "home")), range(100)))
    row = session.execute(f"SELECT views, likes FROM {ks}.hits WHERE page = 'home'").one()
    assert (row.views, row.likes) == (200, -100)
    batch = BatchStatement(batch_type=BatchType.COUNTER)
    batch.add(inc, (5, "home"))
    batch.add(inc, (1, "about"))
    session.execute(batch)
    rows = {r.page: r.views for r in session.execute(f"SELECT page, views FROM {ks}.hits")}
    assert rows == {"home": 205, "about": 1}
    with pytest.raises(InvalidRequest, match="INSERT statements are not allowed on counter tables"):
        session.execute(f"INSERT INTO {ks}.hits (page, views) VALUES ('x', 1)")
    with pytest.raises(InvalidRequest, match="custom timestamp"):
        session.execute(f"UPDATE {ks}.hits USING TIMESTAMP 5 SET views = views + 1 WHERE page = 'x'")
    with pytest.raises(InvalidRequest, match="Cannot include a counter statement in a logged batch"):
        session.execute(f"BEGIN BATCH UPDATE {ks}.hits SET views = views + 1 WHERE page = 'x' APPLY BATCH")
    with pytest.raises(InvalidRequest, match="Cannot mix counter and non counter columns"):
        session.execute(f"CREATE TABLE {ks}.bad (k int PRIMARY KEY, c counter, v int)")
