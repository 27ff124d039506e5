"""Shared fixtures of the Python integration tests.

Fixtures:
  node            session-scoped single sibyl node on 127.0.0.1 and a free port
  cluster         session-scoped cassandra.cluster.Cluster connected to `node`
                  (protocol negotiated from the top, i.e. v5)
  session         its Session
  session_for     session-scoped factory: session_for(4) / session_for(5)
                  gives a cached Session with that explicit protocol version
  make_cluster    function-scoped factory of extra Clusters (closed afterwards)
  fresh_keyspace  a uniquely named SimpleStrategy RF 1 keyspace, dropped after
  node_factory    function-scoped factory of private nodes (restart / kill -9)

When a test fails, the tail of every node's stderr log is attached to the report.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import sys
import time
import uuid

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from sibyl_node import ALL_NODES, Node  # noqa: E402

from cassandra.cluster import (  # noqa: E402
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
)
from cassandra.policies import (  # noqa: E402
    ConstantReconnectionPolicy,
    DCAwareRoundRobinPolicy,
    TokenAwarePolicy,
)

# The driver is chatty at DEBUG; keep its INFO+ in the captured log.
logging.getLogger("cassandra").setLevel(logging.INFO)


# ----------------------------------------------------------------- helpers
def cluster_kwargs(node: Node, **overrides):
    kw = dict(
        contact_points=node.contact_points,
        port=node.native_port,
        connect_timeout=10,
        control_connection_timeout=10,
        reconnection_policy=ConstantReconnectionPolicy(0.3, None),
        # the driver's default policy, named explicitly: without it the driver
        # warns at Cluster() time ("no load_balancing_policy")
        execution_profiles={EXEC_PROFILE_DEFAULT: ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()))},
        # a single node always agrees with itself; keep DDL waits short
        max_schema_agreement_wait=10,
    )
    kw.update(overrides)
    return kw


def new_cluster(node: Node, **overrides) -> Cluster:
    return Cluster(**cluster_kwargs(node, **overrides))


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last error: {last_exc!r}")


def execute_retrying(session, query, params=None, timeout: float = 20.0):
    """Execute, retrying while the driver has no live connection (after a restart)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return session.execute(query, params)
        except NoHostAvailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


_counter = itertools.count()


def unique_name(prefix: str = "ks") -> str:
    return f"{prefix}_{os.getpid() % 1000}_{next(_counter)}_{uuid.uuid4().hex[:6]}"


# ------------------------------------------------------------ node fixtures
@pytest.fixture(scope="session")
def node():
    n = Node(name="shared")
    n.start()
    yield n
    # The shared node must shut down cleanly too.
    try:
        n.stop()
    finally:
        n.cleanup(remove=True)


@pytest.fixture
def node_factory():
    created: list[Node] = []

    def factory(start: bool = True, **kwargs) -> Node:
        kwargs.setdefault("name", f"private{len(created)}")
        n = Node(**kwargs)
        created.append(n)
        if start:
            n.start()
        return n

    yield factory
    for n in created:
        n.cleanup(remove=True)


# --------------------------------------------------------- driver fixtures
@pytest.fixture(scope="session")
def cluster(node):
    c = new_cluster(node)
    yield c
    c.shutdown()


@pytest.fixture(scope="session")
def session(cluster):
    s = cluster.connect()
    yield s


@pytest.fixture(scope="session")
def session_for(node):
    clusters: dict[int, Cluster] = {}
    sessions = {}

    def get(protocol_version: int):
        if protocol_version not in sessions:
            c = new_cluster(node, protocol_version=protocol_version)
            clusters[protocol_version] = c
            sessions[protocol_version] = c.connect()
        return sessions[protocol_version]

    yield get
    for c in clusters.values():
        c.shutdown()


@pytest.fixture
def make_cluster(node):
    made: list[Cluster] = []

    def factory(target: Node | None = None, **overrides) -> Cluster:
        c = new_cluster(target or node, **overrides)
        made.append(c)
        return c

    yield factory
    for c in made:
        c.shutdown()


@pytest.fixture
def fresh_keyspace(session):
    name = unique_name("ks")
    session.execute(
        f"CREATE KEYSPACE {name} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    yield name
    try:
        session.execute(f"DROP KEYSPACE IF EXISTS {name}")
    except Exception as exc:  # noqa: BLE001 - don't mask the test's own result
        print(f"warning: could not drop keyspace {name}: {exc!r}")


# ------------------------------------------------------- failure reporting
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for n in list(ALL_NODES):
            text = n.log_tail(150)
            if text:
                report.sections.append((f"sibyl log of {n.name} ({n.log_path})", text))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: starts its own nodes / restarts them")


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def strip_ansi(s: str) -> str:
    return ANSI.sub("", s)
