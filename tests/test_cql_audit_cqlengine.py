"""cqlengine features as documented, beyond tests/test_cqlengine.py (which covers sync_table,
schema evolution by sync_table, UDT models, CRUD, clustering ranges, BatchQuery creates and
indexed equality/range filters):

- filtering operators: `__in` on the partition key and on a clustering column, `__gt`/`__lte`
  on a regular column with allow_filtering(), `__contains` on an indexed set and
  `__contains` with allow_filtering();
- order_by on the clustering column with limit(), values_list, distinct(), fetch_size paging;
- lightweight transactions: if_not_exists() and iff() raise LWTException when not applied
  (with the existing values), and apply otherwise; if_exists() on update/delete;
- BatchQuery mixing update, delete and collection append, and a conditional batch failing
  (LWTException) or applying as a whole;
- token paging with `pk__token__gt=Token(...)`, as the cqlengine docs show, visiting every
  partition exactly once in token order;
- ttl() on create (USING TTL).
"""

from __future__ import annotations

import os
import time
import uuid

import pytest

os.environ.setdefault("CQLENG_ALLOW_SCHEMA_MANAGEMENT", "1")

from cassandra.cqlengine import columns, connection  # noqa: E402
from cassandra.cqlengine.functions import Token  # noqa: E402
from cassandra.cqlengine.management import sync_table  # noqa: E402
from cassandra.cqlengine.models import Model  # noqa: E402
from cassandra.cqlengine.query import BatchQuery, LWTException  # noqa: E402
from cassandra.murmur3 import murmur3  # noqa: E402


@pytest.fixture
def cqlengine(make_cluster, fresh_keyspace):
    own = make_cluster()
    name = f"sibyl_audit_{fresh_keyspace}"
    connection.register_connection(name, session=own.connect(), default=True)
    yield fresh_keyspace, own
    connection.unregister_connection(name)


def models(ks):
    class Reading(Model):
        __keyspace__ = ks
        __table_name__ = "readings"
        sensor = columns.Integer(partition_key=True)
        seq = columns.Integer(primary_key=True)  # clustering, ascending
        value = columns.Double()
        tags = columns.Set(columns.Text, index=True)
        labels = columns.List(columns.Text)

    class Account(Model):
        __keyspace__ = ks
        __table_name__ = "accounts"
        id = columns.UUID(primary_key=True)
        owner = columns.Text()
        balance = columns.Integer()

    return Reading, Account


def test_filter_operators_order_by_and_limits(cqlengine):
    ks, _ = cqlengine
    Reading, _ = models(ks)
    sync_table(Reading)
    for sensor in range(4):
        for seq in range(6):
            Reading.create(sensor=sensor, seq=seq, value=sensor * 10 + seq,
                           tags={f"s{sensor}", "even" if seq % 2 == 0 else "odd"},
                           labels=[f"l{seq}"])

    # __in on the partition key and on the clustering column
    got = sorted((r.sensor, r.seq) for r in Reading.objects.filter(sensor__in=[1, 3], seq__in=[0, 5]))
    assert got == [(1, 0), (1, 5), (3, 0), (3, 5)]

    # order_by on the clustering column (both directions) with limit
    rows = Reading.objects.filter(sensor=2).order_by("-seq").limit(3)
    assert [r.seq for r in rows] == [5, 4, 3]
    rows = Reading.objects.filter(sensor=2, seq__gt=1).order_by("seq").limit(2)
    assert [r.seq for r in rows] == [2, 3]
    assert Reading.objects.filter(sensor=2, seq__gte=2, seq__lt=5).count() == 3

    # a regular column needs allow_filtering()
    rows = Reading.objects.filter(value__gt=30.0, value__lte=33.0).allow_filtering()
    assert sorted(r.value for r in rows) == [31.0, 32.0, 33.0]

    # __contains on the indexed set, and on the list with allow_filtering()
    deadline = time.time() + 20
    while True:
        try:
            got = sorted((r.sensor, r.seq) for r in Reading.objects.filter(tags__contains="s1"))
            break
        except Exception:  # noqa: BLE001 - the index may still be building
            if time.time() > deadline:
                raise
            time.sleep(0.2)
    assert got == [(1, s) for s in range(6)]
    got = sorted((r.sensor, r.seq)
                 for r in Reading.objects.filter(tags__contains="odd", sensor=3))
    assert got == [(3, 1), (3, 3), (3, 5)]
    got = sorted((r.sensor, r.seq)
                 for r in Reading.objects.filter(labels__contains="l4").allow_filtering())
    assert got == [(s, 4) for s in range(4)]

    # values_list, distinct, and automatic paging through fetch_size
    assert list(Reading.objects.filter(sensor=0).values_list("seq", flat=True)) == list(range(6))
    assert sorted(r.sensor for r in Reading.objects.distinct(["sensor"])) == [0, 1, 2, 3]
    assert len(list(Reading.objects.all().fetch_size(5))) == 24


def test_lwt_if_not_exists_iff_and_if_exists(cqlengine):
    ks, _ = cqlengine
    _, Account = models(ks)
    sync_table(Account)
    aid = uuid.uuid4()
    Account.if_not_exists().create(id=aid, owner="ada", balance=100)
    with pytest.raises(LWTException) as exc:
        Account.if_not_exists().create(id=aid, owner="bob", balance=0)
    # the exception carries the existing row, as Cassandra's [applied] = false result
    assert exc.value.existing["owner"] == "ada" and exc.value.existing["balance"] == 100
    assert Account.get(id=aid).owner == "ada"

    acct = Account.get(id=aid)
    acct.balance = 50
    acct.iff(balance=100).save()
    assert Account.get(id=aid).balance == 50
    acct.balance = 0
    with pytest.raises(LWTException) as exc:
        acct.iff(balance=100).save()
    assert exc.value.existing["balance"] == 50
    assert Account.get(id=aid).balance == 50

    # conditional update through the queryset
    Account.objects(id=aid).iff(owner="ada").update(balance=75)
    assert Account.get(id=aid).balance == 75
    with pytest.raises(LWTException):
        Account.objects(id=aid).iff(owner="nobody").update(balance=1)

    # if_exists on update and delete
    missing = uuid.uuid4()
    with pytest.raises(LWTException):
        Account.objects(id=missing).if_exists().update(balance=1)
    assert Account.objects(id=missing).count() == 0
    Account.objects(id=aid).if_exists().update(owner="ada l.")
    assert Account.get(id=aid).owner == "ada l."
    with pytest.raises(LWTException):
        Account.objects(id=missing).if_exists().delete()
    Account.objects(id=aid).if_exists().delete()
    assert Account.objects(id=aid).count() == 0


def test_batch_update_delete_and_conditional_batch(cqlengine):
    ks, _ = cqlengine
    Reading, _ = models(ks)
    sync_table(Reading)
    for seq in range(5):
        Reading.create(sensor=9, seq=seq, value=float(seq))
    with BatchQuery() as b:
        Reading.objects(sensor=9, seq=0).batch(b).update(value=100.0)
        Reading.objects(sensor=9, seq=1).batch(b).delete()
        Reading.batch(b).create(sensor=9, seq=10, value=10.0)
        Reading.objects(sensor=9, seq=2).batch(b).update(labels__append=["x"])
    # (cqlengine shows a null list as [])
    rows = {r.seq: (r.value, r.labels) for r in Reading.objects(sensor=9)}
    assert rows == {0: (100.0, []), 2: (2.0, ["x"]), 3: (3.0, []), 4: (4.0, []), 10: (10.0, [])}

    # a conditional batch on one partition applies all or nothing; the failed condition's row
    # comes back with [applied] = false (cqlengine raises only for a one-row LWT result, so one
    # conditional statement here)
    b = BatchQuery()
    Reading.objects(sensor=9, seq=3).batch(b).update(value=30.0)
    Reading.objects(sensor=9, seq=4).batch(b).iff(value=999.0).update(value=40.0)
    with pytest.raises(LWTException) as exc:
        b.execute()
    assert exc.value.existing["seq"] == 4 and exc.value.existing["value"] == 4.0
    assert [r.value for r in Reading.objects(sensor=9, seq__in=[3, 4])] == [3.0, 4.0]
    b = BatchQuery()
    Reading.objects(sensor=9, seq=3).batch(b).update(value=30.0)
    Reading.objects(sensor=9, seq=4).batch(b).iff(value=4.0).update(value=40.0)
    b.execute()
    assert [r.value for r in Reading.objects(sensor=9, seq__in=[3, 4])] == [30.0, 40.0]


def test_token_paging(cqlengine):
    ks, _ = cqlengine
    _, Account = models(ks)
    sync_table(Account)
    ids = [uuid.UUID(int=i * 7919 + 1) for i in range(25)]
    for i, aid in enumerate(ids):
        Account.create(id=aid, owner=f"o{i}", balance=i)

    # the documented idiom: page through the table by token of the partition key
    seen = []
    query = Account.objects.all().limit(4)
    page = list(query)
    while page:
        seen.extend(page)
        page = list(query.filter(pk__token__gt=Token(page[-1].pk)))
    assert sorted(a.id for a in seen) == sorted(ids)
    tokens = [murmur3(a.id.bytes) for a in seen]
    assert tokens == sorted(tokens) and len(set(tokens)) == len(ids)

    # token ranges by value: between two tokens, inclusive above
    lo, hi = sorted(tokens)[5], sorted(tokens)[15]
    mid = Account.objects.filter(pk__token__gt=Token(seen[5].pk), pk__token__lte=Token(seen[15].pk))
    assert sorted(murmur3(a.id.bytes) for a in mid) == [t for t in sorted(tokens) if lo < t <= hi]


def test_ttl_on_create(cqlengine):
    ks, own = cqlengine
    _, Account = models(ks)
    sync_table(Account)
    aid = uuid.uuid4()
    Account.ttl(1000).create(id=aid, owner="temp", balance=1)
    row = connection.execute(f"SELECT ttl(owner) AS t FROM {ks}.accounts WHERE id = %s", (aid,)).one()
    assert 990 < row["t"] <= 1000  # cqlengine's session returns dict rows
