"""The sibyl binary's command line: flags, --config, exit codes, SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from sibyl_node import free_port, port_open, run_sibyl, sibyl_binary

from conftest import new_cluster


def local_row(node, **kw):
    c = new_cluster(node, **kw)
    try:
        s = c.connect()
        return s.execute("SELECT * FROM system.local").one()
    finally:
        c.shutdown()


def test_unknown_flag_exits_2(tmp_path):
    p = run_sibyl(["--data-dir", str(tmp_path), "--no-such-flag"])
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "no-such-flag" in p.stderr, p.stderr


def test_bad_flag_value_exits_2(tmp_path):
    p = run_sibyl(["--data-dir", str(tmp_path), "--native-port", "not-a-port"])
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stderr.strip()


def test_help_exits_0():
    p = run_sibyl(["--help"])
    assert p.returncode == 0, p.stderr
    for flag in ("--data-dir", "--listen-address", "--native-port", "--storage-port", "--seeds",
                 "--cluster-name", "--dc", "--rack", "--num-tokens", "--config"):
        assert flag in p.stdout, (flag, p.stdout)


def test_config_file(node_factory, tmp_path):
    port = free_port()
    storage = free_port()
    cfg = tmp_path / "sibyl.yaml"
    cfg.write_text(
        "# cassandra.yaml key names\n"
        "cluster_name: 'Foo'\n"
        f"native_transport_port: {port}\n"
        f"storage_port: {storage}\n"
        "num_tokens: 4\n"
    )
    n = node_factory(native_port=port, storage_port=storage, pass_ports=False,
                     extra_args=["--config", str(cfg)])
    row = local_row(n, protocol_version=5)
    assert row.cluster_name == "Foo"
    assert row.rpc_port == port
    assert len(row.tokens) == 4
    assert f"{n.listen_address}:{port}" in n.log_text()


def test_flags_win_over_config(node_factory, tmp_path):
    cfg = tmp_path / "sibyl.yaml"
    cfg.write_text("cluster_name: FromConfig\nnum_tokens: 4\n")
    n = node_factory(extra_args=["--config", str(cfg), "--cluster-name", "FromFlag",
                                 "--num-tokens", "8", "--dc", "dc9", "--rack", "r7"])
    row = local_row(n, protocol_version=5)
    assert row.cluster_name == "FromFlag"
    assert len(row.tokens) == 8
    assert (row.data_center, row.rack) == ("dc9", "r7")


def test_unknown_config_key_exits_2(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("cluster_name: Foo\nno_such_key_at_all: 1\n")
    p = run_sibyl(["--data-dir", str(tmp_path / "d"), "--config", str(cfg),
                   "--native-port", str(free_port())])
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "no_such_key_at_all" in p.stderr, p.stderr


def test_missing_config_file_fails(tmp_path):
    p = run_sibyl(["--data-dir", str(tmp_path / "d"), "--config", str(tmp_path / "absent.yaml"),
                   "--native-port", str(free_port())])
    assert p.returncode != 0
    assert "absent.yaml" in p.stderr, p.stderr


def test_listening_log_line(node):
    lines = [l for l in node.log_text().splitlines() if "Starting listening for CQL clients on" in l]
    assert len(lines) >= 1, node.log_tail()
    assert f"{node.listen_address}:{node.native_port}" in lines[-1], lines


def test_sigterm_clean_shutdown_keeps_data(node_factory, make_cluster):
    n = node_factory()
    c = make_cluster(n, protocol_version=5)
    s = c.connect()
    s.execute("CREATE KEYSPACE term WITH replication = "
              "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    s.execute("CREATE TABLE term.t (k int PRIMARY KEY, v text)")
    ins = s.prepare("INSERT INTO term.t (k, v) VALUES (?, ?)")
    for k in range(100):
        s.execute(ins, (k, f"v{k}"))
    c.shutdown()

    t0 = time.monotonic()
    rc = n.stop()  # asserts exit code 0
    assert rc == 0
    assert time.monotonic() - t0 < 15, "clean shutdown took too long"
    assert not port_open(n.listen_address, n.native_port)

    n.start()
    c = make_cluster(n, protocol_version=5)
    s = c.connect()
    rows = {r.k: r.v for r in s.execute("SELECT k, v FROM term.t")}
    assert rows == {k: f"v{k}" for k in range(100)}


def test_sigterm_with_open_client_connections(node_factory, make_cluster):
    n = node_factory()
    c = make_cluster(n, protocol_version=5)
    c.connect().execute("SELECT * FROM system.local")
    # the client stays connected while the server shuts down
    assert n.stop() == 0


def test_sigint_also_stops(node_factory):
    n = node_factory()
    rc = n.signal_and_wait(signal.SIGINT, 20)
    assert rc in (0, 130, -signal.SIGINT), rc


def test_defaults_without_arguments(tmp_path):
    """No arguments: CQL on 127.0.0.1:9042, data under ./data."""
    if port_open("127.0.0.1", 9042):
        pytest.fail("port 9042 is already taken on this machine; cannot check the defaults")
    log = open(tmp_path / "stderr.log", "wb")
    proc = subprocess.Popen([str(sibyl_binary())], cwd=tmp_path, stdin=subprocess.DEVNULL,
                            stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while not port_open("127.0.0.1", 9042):
            assert proc.poll() is None, (tmp_path / "stderr.log").read_text(errors="replace")
            assert time.monotonic() < deadline, "no CQL on 127.0.0.1:9042 after 20s"
            time.sleep(0.1)
        from cassandra.cluster import Cluster
        c = Cluster(["127.0.0.1"], port=9042, connect_timeout=10)
        try:
            row = c.connect().execute("SELECT cluster_name, data_center, rack, tokens FROM system.local").one()
        finally:
            c.shutdown()
        assert row.cluster_name == "Test Cluster"
        assert (row.data_center, row.rack) == ("datacenter1", "rack1")
        assert len(row.tokens) == 16
        assert (tmp_path / "data").is_dir()
        assert any((tmp_path / "data").iterdir()), "nothing written under ./data"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        finally:
            log.close()
    assert rc == 0, (tmp_path / "stderr.log").read_text(errors="replace")


def admin(node, *args):
    return run_sibyl(list(args) + ["--host", node.listen_address, "--port", str(node.storage_port)], timeout=60)


def test_status_ring_and_describering(node, session, fresh_keyspace):
    """`sibyl status` / `ring` / `describering` in nodetool's shape, from a running node."""
    r = admin(node, "status")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "Datacenter: datacenter1"
    host_id = str(session.execute("SELECT host_id FROM system.local").one().host_id)
    me = [line for line in lines if host_id in line]
    assert len(me) == 1 and me[0].startswith("UN  127.0.0.1")
    assert "100.0%" in me[0] and " 16 " in me[0]
    r = admin(node, "ring")
    assert r.returncode == 0, r.stderr
    tokens = {str(t) for t in session.execute("SELECT tokens FROM system.local").one().tokens}
    assert {line.split()[-1] for line in r.stdout.splitlines() if line.startswith("127.0.0.1")} == tokens
    r = admin(node, "describering", fresh_keyspace)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("TokenRange(start_token:") == 16
    assert "endpoints:[127.0.0.1]" in r.stdout
    r = admin(node, "describering", "no_such_ks")
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_flush_and_compact(node, session, fresh_keyspace):
    ks = fresh_keyspace
    session.execute(f"CREATE TABLE {ks}.t (k int PRIMARY KEY, v text)")
    tdir = lambda: next(d for d in (node.data_dir / "storage" / "tables").iterdir() if d.name.startswith(f"{ks}.t-"))  # noqa: E731
    data = lambda: sorted(p.name for p in tdir().iterdir() if p.name.endswith("-Data.db"))  # noqa: E731
    for round in range(3):
        session.execute(f"INSERT INTO {ks}.t (k, v) VALUES ({round}, 'x')")
        r = admin(node, "flush", ks, "t")
        assert r.returncode == 0, r.stderr
    assert len(data()) == 3
    r = admin(node, "compact", ks)
    assert r.returncode == 0, r.stderr
    assert len(data()) == 1
    assert sorted(row.k for row in session.execute(f"SELECT k FROM {ks}.t")) == [0, 1, 2]
    r = admin(node, "flush", ks, "nosuch")
    assert r.returncode == 2 and "Unknown table nosuch" in r.stderr


def test_command_without_a_node_fails(tmp_path):
    r = run_sibyl(["status", "--port", str(free_port())])
    assert r.returncode == 1 and "cannot reach the node" in r.stderr
