"""cqlsh (the PyPI build of Cassandra 5.0's cqlsh) against the node."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import strip_ansi


def cqlsh_path() -> str:
    local = Path(sys.executable).parent / "cqlsh"
    if local.exists():
        return str(local)
    return "cqlsh"


@pytest.fixture(scope="module")
def cqlsh_home(tmp_path_factory):
    # a private HOME: no ~/.cassandra/cqlshrc or history from the machine
    return tmp_path_factory.mktemp("cqlsh-home")


def run_cqlsh(node, home, *args, timeout=60):
    env = dict(os.environ, HOME=str(home))
    env.pop("CQLSH_HOST", None)
    env.pop("CQLSH_PORT", None)
    cmd = [cqlsh_path(), node.listen_address, str(node.native_port),
           "--connect-timeout", "20", "--request-timeout", "30", *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                       stdin=subprocess.DEVNULL)
    p.stdout = strip_ansi(p.stdout)
    p.stderr = strip_ansi(p.stderr)
    return p


def ok(p):
    assert p.returncode == 0, f"cqlsh exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    assert "error" not in p.stderr.lower(), p.stderr
    return p.stdout


def test_cqlsh_version():
    p = subprocess.run([cqlsh_path(), "--version"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("cqlsh 6."), p.stdout


def test_describe_keyspaces(node, fresh_keyspace, cqlsh_home):
    out = ok(run_cqlsh(node, cqlsh_home, "-e", "DESCRIBE KEYSPACES"))
    names = out.split()
    for ks in ("system", "system_schema", fresh_keyspace):
        assert ks in names, out


def test_select_system_local(node, cqlsh_home):
    out = ok(run_cqlsh(node, cqlsh_home, "-e",
                       "SELECT cluster_name, data_center, rack, cql_version FROM system.local"))
    assert "Test Cluster" in out and "datacenter1" in out and "rack1" in out and "3.4.7" in out, out
    assert "(1 rows)" in out, out


def test_describe_table(node, session, fresh_keyspace, cqlsh_home):
    ks = fresh_keyspace
    session.execute(f"CREATE TABLE {ks}.t (k int, c text, v map<text, int>, PRIMARY KEY (k, c)) "
                    "WITH CLUSTERING ORDER BY (c DESC) AND comment = 'described'")
    out = ok(run_cqlsh(node, cqlsh_home, "-e", f"DESCRIBE TABLE {ks}.t"))
    assert f"CREATE TABLE {ks}.t (" in out, out
    assert "k int" in out and "c text" in out and "v map<text, int>" in out, out
    assert "PRIMARY KEY (k, c)" in out, out
    assert "CLUSTERING ORDER BY (c DESC)" in out, out
    assert "comment = 'described'" in out, out

    out = ok(run_cqlsh(node, cqlsh_home, "-e", f"DESCRIBE KEYSPACE {ks}"))
    assert f"CREATE KEYSPACE {ks} WITH replication" in out, out
    assert f"CREATE TABLE {ks}.t (" in out, out

    out = ok(run_cqlsh(node, cqlsh_home, "-k", ks, "-e", "DESCRIBE TABLES"))
    assert "t" in out.split(), out


def test_describe_missing_table_fails(node, fresh_keyspace, cqlsh_home):
    p = run_cqlsh(node, cqlsh_home, "-e", f"DESCRIBE TABLE {fresh_keyspace}.nope")
    assert p.returncode != 0
    assert "nope" in p.stderr, p.stderr


def test_cql_file(node, session, fresh_keyspace, cqlsh_home, tmp_path):
    ks = fresh_keyspace
    f = tmp_path / "script.cql"
    f.write_text(f"""
USE {ks};
CREATE TABLE users (id int PRIMARY KEY, name text, emails set<text>);
INSERT INTO users (id, name, emails) VALUES (1, 'Ada', {{'ada@example.org'}});
INSERT INTO users (id, name) VALUES (2, 'Grace');
-- a comment
UPDATE users SET name = 'Grace H.' WHERE id = 2;
SELECT id, name FROM users WHERE id = 2;
""")
    out = ok(run_cqlsh(node, cqlsh_home, "-f", str(f)))
    assert "Grace H." in out and "(1 rows)" in out, out
    rows = {r.id: r.name for r in session.execute(f"SELECT id, name FROM {ks}.users")}
    assert rows == {1: "Ada", 2: "Grace H."}


def test_cql_file_with_error_exits_nonzero(node, fresh_keyspace, cqlsh_home, tmp_path):
    f = tmp_path / "bad.cql"
    f.write_text(f"USE {fresh_keyspace};\nSELEKT * FROM nothing;\n")
    p = run_cqlsh(node, cqlsh_home, "-f", str(f))
    assert p.returncode != 0
    assert "SyntaxException" in p.stderr or "Syntax" in p.stderr, p.stderr
