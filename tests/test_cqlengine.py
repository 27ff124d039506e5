"""cqlengine (the driver's object mapper) against the node: sync_table
(CREATE / ALTER through metadata), CRUD, queries over a clustering range,
batches."""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta

import pytest

os.environ.setdefault("CQLENG_ALLOW_SCHEMA_MANAGEMENT", "1")

from cassandra.cqlengine import columns, connection  # noqa: E402
from cassandra.cqlengine.management import drop_table, sync_table, sync_type  # noqa: E402
from cassandra.cqlengine.models import Model  # noqa: E402
from cassandra.cqlengine.query import BatchQuery, DoesNotExist  # noqa: E402
from cassandra.cqlengine.usertype import UserType  # noqa: E402


@pytest.fixture
def cqlengine(make_cluster, fresh_keyspace):
    # a private Cluster: unregister_connection() shuts the cluster down
    own = make_cluster()
    name = f"sibyl_{fresh_keyspace}"
    connection.register_connection(name, session=own.connect(), default=True)
    yield fresh_keyspace, own
    connection.unregister_connection(name)


def make_models(ks):
    class Address(UserType):
        __type_name__ = "address"
        street = columns.Text()
        zipcode = columns.Integer()

    class Event(Model):
        __keyspace__ = ks
        __table_name__ = "events"
        device = columns.UUID(partition_key=True)
        ts = columns.DateTime(primary_key=True, clustering_order="DESC")
        kind = columns.Text()
        payload = columns.Map(columns.Text, columns.Integer)
        tags = columns.Set(columns.Text)
        where = columns.UserDefinedType(Address)

    class EventV2(Model):
        __keyspace__ = ks
        __table_name__ = "events"
        device = columns.UUID(partition_key=True)
        ts = columns.DateTime(primary_key=True, clustering_order="DESC")
        kind = columns.Text()
        payload = columns.Map(columns.Text, columns.Integer)
        tags = columns.Set(columns.Text)
        where = columns.UserDefinedType(Address)
        severity = columns.SmallInt()

    return Address, Event, EventV2


def test_cqlengine_models(cqlengine):
    ks, cluster = cqlengine
    Address, Event, EventV2 = make_models(ks)
    sync_type(ks, Address)
    sync_table(Event)
    sync_table(Event)  # idempotent
    table = cluster.metadata.keyspaces[ks].tables["events"]
    assert [c.name for c in table.partition_key] == ["device"]
    assert [c.name for c in table.clustering_key] == ["ts"]
    assert table.columns["ts"].is_reversed

    dev = uuid.uuid4()
    t0 = datetime(2024, 5, 1, 12, 0, 0)
    for i in range(10):
        Event.create(device=dev, ts=t0 + timedelta(minutes=i), kind=f"k{i}",
                     payload={"n": i}, tags={f"t{i % 3}"},
                     where=Address(street=f"street {i}", zipcode=1000 + i))
    Event.create(device=uuid.uuid4(), ts=t0, kind="other")

    rows = list(Event.objects(device=dev))
    assert [r.kind for r in rows] == [f"k{i}" for i in range(9, -1, -1)]  # DESC clustering
    assert Event.objects(device=dev).count() == 10
    latest = Event.objects(device=dev).limit(2)
    assert [r.kind for r in latest] == ["k9", "k8"]
    window = Event.objects(device=dev).filter(ts__gte=t0 + timedelta(minutes=3),
                                               ts__lt=t0 + timedelta(minutes=6))
    assert sorted(r.kind for r in window) == ["k3", "k4", "k5"]
    one = Event.get(device=dev, ts=t0 + timedelta(minutes=4))
    assert one.payload == {"n": 4} and one.tags == {"t1"}
    assert (one.where.street, one.where.zipcode) == ("street 4", 1004)

    # update and delete through the model
    one.kind = "changed"
    one.payload["m"] = 5
    one.save()
    again = Event.get(device=dev, ts=t0 + timedelta(minutes=4))
    assert again.kind == "changed" and again.payload == {"n": 4, "m": 5}
    Event.objects(device=dev, ts=t0).update(kind="updated")
    assert Event.get(device=dev, ts=t0).kind == "updated"
    again.delete()
    with pytest.raises(DoesNotExist):
        Event.get(device=dev, ts=t0 + timedelta(minutes=4))

    # batch
    with BatchQuery() as b:
        for i in range(20, 25):
            Event.batch(b).create(device=dev, ts=t0 + timedelta(minutes=i), kind=f"b{i}")
    assert Event.objects(device=dev).count() == 14

    # schema evolution: sync_table adds the new column with ALTER TABLE
    sync_table(EventV2)
    table = cluster.metadata.keyspaces[ks].tables["events"]
    assert table.columns["severity"].cql_type == "smallint"
    EventV2.create(device=dev, ts=t0 + timedelta(days=1), kind="v2", severity=3)
    assert EventV2.get(device=dev, ts=t0 + timedelta(days=1)).severity == 3
    assert EventV2.get(device=dev, ts=t0).severity is None

    drop_table(EventV2)
    assert "events" not in cluster.metadata.keyspaces[ks].tables


def test_indexed_column_filters_without_allow_filtering(cqlengine):
    """`index=True` makes sync_table create a secondary index (served by SAI); filtering on the
    column then needs no allow_filtering(), and a second sync_table sees the index."""
    ks, own = cqlengine

    class User(Model):
        __keyspace__ = ks
        __table_name__ = "users"
        id = columns.Integer(primary_key=True)
        email = columns.Text(index=True)
        age = columns.Integer(index=True)

    sync_table(User)
    sync_table(User)
    own.refresh_schema_metadata()
    idx = own.metadata.keyspaces[ks].tables["users"].indexes
    assert {i.index_options["target"] for i in idx.values()} == {"email", "age"}
    for i in range(30):
        User.create(id=i, email=f"u{i % 3}@x", age=i)
    import time
    deadline = time.time() + 20
    while True:
        try:
            got = sorted(u.id for u in User.objects.filter(email="u1@x"))
            break
        except Exception:  # noqa: BLE001 - the index may still be building
            if time.time() > deadline:
                raise
            time.sleep(0.2)
    assert got == list(range(1, 30, 3))
    assert sorted(u.id for u in User.objects.filter(age__gt=5, email="u0@x")) == [6, 9, 12, 15, 18, 21, 24, 27]
