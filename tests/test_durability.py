"""Acknowledged writes survive kill -9; identity and prepared statements
survive restarts."""

from __future__ import annotations

from cassandra.concurrent import execute_concurrent_with_args

from conftest import execute_retrying, wait_for
from sibyl_node import free_port, run_sibyl

ROWS = 2000


def create_rows_table(session, ks):
    """Keyspace `ks` (RF 1) with the table `ks.t` that write_rows / check_rows use."""
    session.execute(f"CREATE KEYSPACE {ks} WITH replication = "
                    "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    session.execute(f"CREATE TABLE {ks}.t (p int, c int, v text, PRIMARY KEY (p, c))")


def write_rows(session, table, start, count):
    ins = session.prepare(f"INSERT INTO {table} (p, c, v) VALUES (?, ?, ?)")
    args = [(i % 50, i, f"value-{i}-" + "x" * (i % 100)) for i in range(start, start + count)]
    results = execute_concurrent_with_args(session, ins, args, concurrency=50,
                                           raise_on_first_error=False)
    failed = [r.result_or_exc for r in results if not r.success]
    assert failed == [], failed[:3]


def check_rows(session, table, total):
    rows = list(execute_retrying(session, f"SELECT p, c, v FROM {table}"))
    assert len(rows) == total, f"expected {total} rows after restart, got {len(rows)}"
    got = {r.c: (r.p, r.v) for r in rows}
    missing = [i for i in range(total) if got.get(i) != (i % 50, f"value-{i}-" + "x" * (i % 100))]
    assert missing == [], f"{len(missing)} rows missing or wrong, e.g. {missing[:10]}"
    # point reads too (memtable/commitlog replay vs. scans)
    sel = session.prepare(f"SELECT v FROM {table} WHERE p = ? AND c = ?")
    for i in (0, 1, total // 2, total - 1):
        assert session.execute(sel, (i % 50, i)).one().v == f"value-{i}-" + "x" * (i % 100)


def local_identity(session):
    row = execute_retrying(session, "SELECT host_id, tokens, cluster_name FROM system.local").one()
    return row.host_id, sorted(row.tokens), row.cluster_name


def test_kill_9_twice_keeps_acknowledged_writes(node_factory, make_cluster):
    n = node_factory()
    c = make_cluster(n, protocol_version=5)
    s = c.connect()
    create_rows_table(s, "dur")
    identity = local_identity(s)
    c.shutdown()

    total = 0
    for _round in range(2):
        c = make_cluster(n, protocol_version=5)
        s = c.connect()
        write_rows(s, "dur.t", total, ROWS)
        total += ROWS
        c.shutdown()

        n.kill()  # SIGKILL right after the last acknowledgement
        assert n.last_returncode == -9
        n.start()

        c = make_cluster(n, protocol_version=5)
        s = c.connect()
        assert "t" in c.metadata.keyspaces["dur"].tables
        check_rows(s, "dur.t", total)
        assert local_identity(s) == identity
        c.shutdown()


def test_prepared_statements_survive_restart(node_factory, make_cluster):
    n = node_factory()
    # reprepare_on_up=False: the driver must recover through the UNPREPARED
    # error path (re-prepare on demand), not by re-preparing on reconnect
    c = make_cluster(n, protocol_version=5, reprepare_on_up=False)
    s = c.connect()
    s.execute("CREATE KEYSPACE prep WITH replication = "
              "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    s.execute("CREATE TABLE prep.t (k int PRIMARY KEY, v text)")
    ins = s.prepare("INSERT INTO prep.t (k, v) VALUES (?, ?)")
    sel = s.prepare("SELECT v FROM prep.t WHERE k = ?")
    s.execute(ins, (1, "before"))
    assert s.execute(sel, (1,)).one().v == "before"

    n.stop()
    n.start()

    # the driver reconnects by itself; the same PreparedStatement objects keep working
    wait_for(lambda: execute_retrying(s, sel, (1,)).one().v == "before", timeout=20,
             what="prepared SELECT to work after restart")
    execute_retrying(s, ins, (2, "after"))
    assert s.execute(sel, (2,)).one().v == "after"
    # and a fresh connection of another client sees everything
    c2 = make_cluster(n, protocol_version=4)
    s2 = c2.connect()
    assert {r.k: r.v for r in s2.execute("SELECT k, v FROM prep.t")} == {1: "before", 2: "after"}


def test_a_second_process_on_the_same_data_dir_is_refused(node_factory, make_cluster):
    n = node_factory()
    c = make_cluster(n, protocol_version=5)
    s = c.connect()
    create_rows_table(s, "lockdir")
    write_rows(s, "lockdir.t", 0, 500)

    # Other ports, same directory: it must stop before touching any file of the running node.
    other = run_sibyl(["--data-dir", str(n.data_dir), "--listen-address", "127.0.0.1",
                       "--native-port", str(free_port()), "--storage-port", str(free_port())])
    assert other.returncode != 0
    assert "is in use by another process" in other.stderr + other.stdout

    # The running node is unharmed: writes (new commit log segments included) and reads work.
    write_rows(s, "lockdir.t", 500, 1500)
    check_rows(s, "lockdir.t", 2000)
    c.shutdown()
    n.stop()
    n.start()
    c = make_cluster(n, protocol_version=5)
    check_rows(c.connect(), "lockdir.t", 2000)
    c.shutdown()
