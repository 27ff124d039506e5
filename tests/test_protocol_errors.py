"""Malformed and hostile native-protocol input over raw sockets. The node must
answer like Cassandra (ERROR frames with the right codes), never crash, and keep
serving normal clients afterwards."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from cassandra import ProtocolVersion
from cassandra.protocol import SyntaxException

from conftest import new_cluster, unique_name

# opcodes
ERROR, STARTUP, READY, AUTHENTICATE, OPTIONS, SUPPORTED = 0x00, 0x01, 0x02, 0x03, 0x05, 0x06
QUERY, RESULT, PREPARE, EXECUTE = 0x07, 0x08, 0x09, 0x0A
# error codes
PROTOCOL_ERROR, INVALID, SYNTAX_ERROR, UNPREPARED = 0x000A, 0x2200, 0x2000, 0x2500


# ------------------------------------------------------------ encoding
def short(n):
    return struct.pack(">H", n)


def string(s: str) -> bytes:
    b = s.encode()
    return short(len(b)) + b


def long_string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">i", len(b)) + b


def string_map(d: dict) -> bytes:
    return short(len(d)) + b"".join(string(k) + string(v) for k, v in d.items())


def frame(version, opcode, body=b"", stream=0, flags=0) -> bytes:
    return struct.pack(">BBhBI", version, flags, stream, opcode, len(body)) + body


class Body:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n):
        out = self.data[self.pos:self.pos + n]
        assert len(out) == n, "body too short"
        self.pos += n
        return out

    def int(self):
        return struct.unpack(">i", self.take(4))[0]

    def short(self):
        return struct.unpack(">H", self.take(2))[0]

    def string(self):
        return self.take(self.short()).decode()

    def short_bytes(self):
        return self.take(self.short())

    def string_list(self):
        return [self.string() for _ in range(self.short())]

    def string_multimap(self):
        return {self.string(): self.string_list() for _ in range(self.short())}


class Frame:
    def __init__(self, version, flags, stream, opcode, body):
        self.version, self.flags, self.stream, self.opcode, self.body = version, flags, stream, opcode, body

    def error(self):
        assert self.opcode == ERROR, f"expected ERROR frame, got opcode {self.opcode:#x}: {self.body!r}"
        b = Body(self.body)
        code = b.int()
        msg = b.string()
        return code, msg, b

    def __repr__(self):
        return (f"Frame(version={self.version:#x}, flags={self.flags:#x}, stream={self.stream}, "
                f"opcode={self.opcode:#x}, body={self.body[:200]!r})")


class Raw:
    def __init__(self, node, timeout=5.0):
        self.sock = socket.create_connection((node.listen_address, node.native_port), timeout=timeout)
        self.sock.settimeout(timeout)

    def send(self, data: bytes):
        self.sock.sendall(data)

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                return None if not buf else buf
            buf += chunk
        return buf

    def recv_frame(self) -> Frame | None:
        """A frame, or None when the server closed the connection."""
        try:
            header = self._recv_exact(9)
        except ConnectionResetError:
            return None
        if header is None:
            return None
        assert len(header) == 9, f"connection closed inside a frame header: {header!r}"
        version, flags, stream, opcode, length = struct.unpack(">BBhBI", header)
        assert version & 0x80, f"response without the response direction bit: {header!r}"
        body = self._recv_exact(length) if length else b""
        assert body is not None and len(body) == length, "connection closed inside a frame body"
        return Frame(version & 0x7F, flags, stream, opcode, body)

    def closed_by_peer(self, timeout=5.0) -> bool:
        """True once the server has closed (EOF/reset) within `timeout`, skipping frames."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                data = self.sock.recv(65536)
                if not data:
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        return False

    def request(self, version, opcode, body=b"", stream=1, flags=0) -> Frame | None:
        self.send(frame(version, opcode, body, stream, flags))
        return self.recv_frame()

    def startup(self, version=4):
        f = self.request(version, STARTUP, string_map({"CQL_VERSION": "3.0.0"}), stream=0)
        assert f is not None and f.opcode == READY, f
        return f

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def query_body_v4(cql: str, consistency=0x0001) -> bytes:
    return long_string(cql) + short(consistency) + b"\x00"


# ------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def canary(node):
    """Data written before the abuse; must be intact after it."""
    c = new_cluster(node, protocol_version=5)
    s = c.connect()
    ks = unique_name("canary")
    s.execute(f"CREATE KEYSPACE {ks} WITH replication = "
              "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    s.execute(f"CREATE TABLE {ks}.t (k int PRIMARY KEY, v text)")
    for k in range(50):
        s.execute(f"INSERT INTO {ks}.t (k, v) VALUES ({k}, 'v{k}')")
    yield ks
    s.execute(f"DROP KEYSPACE {ks}")
    c.shutdown()


def assert_node_serves(node, ks):
    c = new_cluster(node)
    try:
        s = c.connect()
        assert c.protocol_version == ProtocolVersion.V5
        rows = {r.k: r.v for r in s.execute(f"SELECT k, v FROM {ks}.t")}
        assert rows == {k: f"v{k}" for k in range(50)}
    finally:
        c.shutdown()


@pytest.fixture
def raw(node):
    conns = []

    def open_raw():
        r = Raw(node)
        conns.append(r)
        return r

    yield open_raw
    for r in conns:
        r.close()


# ---------------------------------------------------------------- tests
def test_options_supported(raw):
    r = raw()
    f = r.request(4, OPTIONS, stream=0x1234)
    assert f.opcode == SUPPORTED, f
    assert f.version == 4
    assert f.stream == 0x1234
    opts = Body(f.body).string_multimap()
    assert opts["CQL_VERSION"] == ["3.4.7"]
    assert "lz4" in opts["COMPRESSION"] and "snappy" in opts["COMPRESSION"], opts
    assert "4/v4" in opts["PROTOCOL_VERSIONS"] and "5/v5" in opts["PROTOCOL_VERSIONS"], opts
    # the same connection goes on to STARTUP and a query
    r.startup(4)
    f = r.request(4, QUERY, query_body_v4("SELECT cluster_name FROM system.local"), stream=7)
    assert f.opcode == RESULT and f.stream == 7, f
    assert b"Test Cluster" in f.body


def test_v5_startup_ready(raw):
    r = raw()
    f = r.request(5, OPTIONS, stream=3)
    assert f.opcode == SUPPORTED and f.version == 5, f
    f = r.request(5, STARTUP, string_map({"CQL_VERSION": "3.0.0"}), stream=4)
    assert f.opcode == READY and f.version == 5 and f.stream == 4, f


def test_garbage_bytes_close_the_connection(raw, node, canary):
    r = raw()
    r.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n" + bytes(range(256)) * 4)
    f = r.recv_frame()
    if f is not None:
        # Cassandra: ProtocolException "Invalid or unsupported protocol version (71)"
        code, msg, _ = f.error()
        assert code == PROTOCOL_ERROR, (code, msg)
        assert r.closed_by_peer(), "connection left open after a fatal protocol error"
    assert_node_serves(node, canary)


def test_garbage_after_startup(raw, node, canary):
    r = raw()
    r.startup(4)
    r.send(b"\xff" * 64)
    f = r.recv_frame()
    if f is not None:
        code, msg, _ = f.error()
        assert code == PROTOCOL_ERROR, (code, msg)
        assert r.closed_by_peer()
    assert_node_serves(node, canary)


@pytest.mark.parametrize("version", [0x06, 0x42, 0x41, 0x07])
def test_unsupported_protocol_version(raw, version):
    r = raw()
    f = r.request(version, STARTUP, string_map({"CQL_VERSION": "3.0.0"}), stream=0)
    assert f is not None, "connection closed without an ERROR frame"
    code, msg, _ = f.error()
    assert code == PROTOCOL_ERROR, (code, msg)
    if version == 0x06:
        # Cassandra 5.0 knows v6 as a beta version: without the USE_BETA flag it
        # says so; a server without v6 says it is unsupported. The driver steps
        # down on either message.
        assert ("Invalid or unsupported protocol version (6)" in msg
                or "USE_BETA flag is unset" in msg), msg
    else:
        assert f"Invalid or unsupported protocol version ({version})" in msg, msg
    # the reply uses a version the driver can read (it parses the header with it)
    assert 3 <= f.version <= 6, f


def _send_zeros(r, n):
    chunk = b"\x00" * (1 << 20)
    try:
        while n > 0:
            r.sock.sendall(chunk[:min(n, len(chunk))])
            n -= min(n, len(chunk))
        return True
    except (BrokenPipeError, ConnectionResetError):
        return False


def test_oversized_frame(raw, node, canary):
    r = raw()
    r.startup(4)
    declared = 17 * 1024 * 1024  # > native_transport_max_frame_size (16 MiB)
    r.send(struct.pack(">BBhBI", 4, 0, 9, QUERY, declared))
    r.sock.settimeout(2)
    body_sent = False
    try:
        f = r.recv_frame()
    except socket.timeout:
        # Cassandra 5.0 (Envelope.Decoder) discards the whole declared body
        # before answering: send it.
        body_sent = _send_zeros(r, declared)
        r.sock.settimeout(10)
        f = r.recv_frame()
    if f is not None:
        code, msg, _ = f.error()
        assert f.stream == 9, f
        # Cassandra: InvalidRequest "Request is too big: length 17825801 exceeds
        # maximum allowed length 16777216." and the connection goes on after the
        # body was skipped; a PROTOCOL_ERROR must close the connection.
        assert code in (PROTOCOL_ERROR, INVALID), (code, msg)
        if code == INVALID:
            assert "Request is too big: length 17825801 exceeds maximum allowed length 16777216" in msg, msg
            if not body_sent:
                assert _send_zeros(r, declared), "connection closed while the body was being skipped"
            r.sock.settimeout(10)
            f = r.request(4, OPTIONS, stream=10)
            assert f is not None and f.opcode == SUPPORTED and f.stream == 10, f
        else:
            assert r.closed_by_peer(), "connection left open after PROTOCOL_ERROR"
    assert_node_serves(node, canary)


def test_unknown_opcode(raw, node, canary):
    r = raw()
    r.startup(4)
    f = r.request(4, 0x33, b"", stream=5)
    assert f is not None, "connection closed without an ERROR frame"
    code, msg, _ = f.error()
    assert code == PROTOCOL_ERROR, (code, msg)
    assert "opcode" in msg.lower(), msg  # Cassandra: "Unknown opcode 51"
    assert f.stream == 5
    assert_node_serves(node, canary)


def test_response_opcode_sent_as_request(raw):
    r = raw()
    r.startup(4)
    f = r.request(4, READY, b"", stream=6)  # a response-only opcode
    assert f is not None
    code, msg, _ = f.error()
    assert code == PROTOCOL_ERROR, (code, msg)


def test_query_before_startup(raw):
    r = raw()
    f = r.request(4, QUERY, query_body_v4("SELECT * FROM system.local"), stream=2)
    assert f is not None
    code, msg, _ = f.error()
    # Cassandra: ProtocolException "Unexpected message QUERY, expecting STARTUP or OPTIONS"
    assert code == PROTOCOL_ERROR, (code, msg)


def test_startup_with_unknown_compression(raw):
    r = raw()
    f = r.request(4, STARTUP, string_map({"CQL_VERSION": "3.0.0", "COMPRESSION": "bogus"}))
    assert f is not None
    code, msg, _ = f.error()
    assert code == PROTOCOL_ERROR, (code, msg)
    assert "bogus" in msg, msg


def test_truncated_frame_then_close(node, canary):
    for cut in (3, 9, 20):
        r = Raw(node)
        r.startup(4)
        data = frame(4, QUERY, query_body_v4("SELECT * FROM system.local"), stream=1)
        r.send(data[:cut])
        r.close()
    # a truncated body followed by silence: no answer, connection kept
    r = Raw(node)
    r.startup(4)
    data = frame(4, QUERY, query_body_v4("SELECT * FROM system.local"), stream=1)
    r.send(data[:15])
    r.sock.settimeout(1)
    with pytest.raises(socket.timeout):
        r.sock.recv(1)
    # completing the frame later yields the answer
    r.sock.settimeout(5)
    r.send(data[15:])
    f = r.recv_frame()
    assert f is not None and f.opcode == RESULT, f
    r.close()
    assert_node_serves(node, canary)


def test_invalid_cql_is_syntax_error(raw, session):
    r = raw()
    r.startup(4)
    f = r.request(4, QUERY, query_body_v4("SELEKT * FROM system.local"), stream=11)
    code, msg, _ = f.error()
    assert code == SYNTAX_ERROR, (code, msg)
    assert f.stream == 11
    # same connection still usable
    f = r.request(4, QUERY, query_body_v4("SELECT key FROM system.local"), stream=12)
    assert f.opcode == RESULT, f
    # through the driver
    with pytest.raises(SyntaxException):
        session.execute("SELEKT * FROM system.local")
    with pytest.raises(SyntaxException):
        session.execute("SELECT * FROM system.local WHERE")


def test_execute_unknown_id_is_unprepared(raw):
    r = raw()
    r.startup(4)
    bogus = bytes(range(16))
    body = short(len(bogus)) + bogus + short(0x0001) + b"\x00"
    f = r.request(4, EXECUTE, body, stream=13)
    code, msg, rest = f.error()
    assert code == UNPREPARED, (code, msg)
    assert rest.short_bytes() == bogus
    assert f.stream == 13


def test_prepare_then_execute_raw(raw):
    r = raw()
    r.startup(4)
    f = r.request(4, PREPARE, long_string("SELECT key FROM system.local WHERE key = ?"), stream=14)
    assert f.opcode == RESULT, f
    b = Body(f.body)
    assert b.int() == 0x0004  # Prepared
    stmt_id = b.short_bytes()
    assert len(stmt_id) == 16  # MD5
    # EXECUTE with the value 'local' (flags 0x01 = values)
    body = (short(len(stmt_id)) + stmt_id + short(0x0001) + b"\x01" + short(1)
            + struct.pack(">i", 5) + b"local")
    f = r.request(4, EXECUTE, body, stream=15)
    assert f.opcode == RESULT, f
    assert b"local" in f.body


def test_node_still_serves_after_everything(node, canary, session):
    assert_node_serves(node, canary)
    assert session.execute("SELECT cluster_name FROM system.local").one().cluster_name == "Test Cluster"
