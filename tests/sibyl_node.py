"""Start and stop real `sibyl` server processes for the integration tests.

A Node owns a temporary root directory holding the server's data directory
(`<root>/data`, passed as --data-dir) and the captured stderr of every run of
the process (`<root>/data/../sibyl.log`, i.e. beside the data so that the server
never sees foreign files inside its own data directory).

The binary is `target/release/sibyl` of this workspace unless the environment
variable SIBYL_BIN names another one.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = float(os.environ.get("SIBYL_START_TIMEOUT", "20"))
STOP_TIMEOUT = float(os.environ.get("SIBYL_STOP_TIMEOUT", "30"))
LISTENING_LINE = "Starting listening for CQL clients on"

# Every Node ever created in this test process; conftest prints their logs when
# a test fails.
ALL_NODES: list["Node"] = []


def sibyl_binary() -> Path:
    env = os.environ.get("SIBYL_BIN")
    path = Path(env) if env else REPO_ROOT / "target" / "release" / "sibyl"
    if not path.is_file() or not os.access(path, os.X_OK):
        raise RuntimeError(
            f"sibyl binary not found at {path}: run `cargo build --release` "
            f"(or set SIBYL_BIN)"
        )
    return path


_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free now on `host` and was not handed out before in
    this process (so two nodes started later never get the same one)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _handed_out and port < 60000:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port found")


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class NodeStartError(AssertionError):
    pass


class Node:
    """One sibyl server process (restartable on the same data directory)."""

    def __init__(
        self,
        name: str = "node",
        listen_address: str = "127.0.0.1",
        native_port: int | None = None,
        storage_port: int | None = None,
        seeds: str | None = None,
        extra_args: list[str] | tuple[str, ...] = (),
        root: str | Path | None = None,
        binary: str | Path | None = None,
        pass_ports: bool = True,
    ):
        self.name = name
        self.listen_address = listen_address
        self.native_port = native_port or free_port(listen_address)
        self.storage_port = storage_port or free_port(listen_address)
        self.seeds = seeds
        self.extra_args = list(extra_args)
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix=f"sibyl-{name}-"))
        self.data_dir = self.root / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.root / "sibyl.log"
        self.binary = Path(binary) if binary else None
        # False: the ports come from elsewhere (e.g. a --config file); the node
        # still waits on native_port
        self.pass_ports = pass_ports
        # Extra environment for the process (e.g. fault injection in tests).
        self.env: dict[str, str] = {}
        self.proc: subprocess.Popen | None = None
        self.last_returncode: int | None = None
        self._log_file = None
        ALL_NODES.append(self)

    # ------------------------------------------------------------------ info
    @property
    def address(self) -> str:
        return self.listen_address

    @property
    def contact_points(self) -> list[str]:
        return [self.listen_address]

    def args(self) -> list[str]:
        args = [
            "--data-dir", str(self.data_dir),
            "--listen-address", self.listen_address,
        ]
        if self.pass_ports:
            args += ["--native-port", str(self.native_port),
                     "--storage-port", str(self.storage_port)]
        if self.seeds:
            args += ["--seeds", self.seeds]
        return args + self.extra_args

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 150) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __repr__(self) -> str:
        state = "running" if self.is_running() else f"stopped rc={self.last_returncode}"
        return f"<Node {self.name} {self.listen_address}:{self.native_port} {state} {self.root}>"

    # ------------------------------------------------------------- lifecycle
    def start(self, wait: bool = True, timeout: float = START_TIMEOUT) -> "Node":
        assert not self.is_running(), f"{self} already running"
        binary = self.binary or sibyl_binary()
        self._log_file = open(self.log_path, "ab", buffering=0)
        self._log_file.write(
            f"\n===== test harness: starting {binary} {' '.join(self.args())} =====\n".encode()
        )
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        env.update(self.env)
        self.proc = subprocess.Popen(
            [str(binary)] + self.args(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=self._log_file,
            cwd=str(self.root),
            env=env,
            start_new_session=True,
        )
        self.last_returncode = None
        if wait:
            self.wait_for_cql(timeout)
        return self

    def wait_for_cql(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self.last_returncode = rc
                raise NodeStartError(
                    f"{self.name}: sibyl exited with code {rc} during start-up\n"
                    f"--- {self.log_path} ---\n{self.log_tail()}"
                )
            if port_open(self.listen_address, self.native_port):
                return
            time.sleep(0.1)
        log = self.log_tail()
        self.kill()
        raise NodeStartError(
            f"{self.name}: CQL port {self.listen_address}:{self.native_port} not "
            f"accepting connections after {timeout}s\n--- {self.log_path} ---\n{log}"
        )

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def signal_and_wait(self, sig: int, timeout: float = STOP_TIMEOUT) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self._close_log()
            raise AssertionError(
                f"{self.name}: did not exit within {timeout}s of signal {sig}\n"
                f"--- {self.log_path} ---\n{self.log_tail()}"
            )
        self.last_returncode = rc
        self._close_log()
        return rc

    def stop(self, timeout: float = STOP_TIMEOUT, check: bool = True) -> int:
        """SIGTERM, wait; the clean shutdown must exit 0."""
        if self.proc is None:
            return 0
        rc = self.signal_and_wait(signal.SIGTERM, timeout)
        if check:
            assert rc == 0, (
                f"{self.name}: exit code {rc} after SIGTERM (expected 0)\n"
                f"--- {self.log_path} ---\n{self.log_tail()}"
            )
        return rc

    def kill(self) -> int:
        """SIGKILL (kill -9): no chance to flush anything."""
        if self.proc is None:
            return 0
        if self.proc.poll() is not None:
            self.last_returncode = self.proc.returncode
            self._close_log()
            return self.last_returncode
        return self.signal_and_wait(signal.SIGKILL, 10)

    def restart(self, kill: bool = False, wait: bool = True) -> "Node":
        if kill:
            self.kill()
        else:
            self.stop()
        return self.start(wait=wait)

    def cleanup(self, remove: bool = True) -> None:
        """Stop (without asserting the exit code) and remove the directory."""
        if self.is_running():
            try:
                self.signal_and_wait(signal.SIGTERM, 10)
            except AssertionError:
                pass
        self.kill()
        if remove and not os.environ.get("SIBYL_KEEP_DATA"):
            shutil.rmtree(self.root, ignore_errors=True)
        if self in ALL_NODES and remove:
            ALL_NODES.remove(self)


def run_sibyl(args: list[str], timeout: float = 15, cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """Run the binary to completion (for argument / config errors)."""
    return subprocess.run(
        [str(sibyl_binary())] + list(args),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )
