"""Throwaway real servers for tests: a PostgreSQL cluster, a Redis server and
an S3 endpoint.

Each runs from the Debian packages' binaries, on a free loopback port, with
its files in a temporary directory that is removed at the end. Nothing is
mocked: the storage and scale-out tests run against the same servers a
deployment uses. `scripts/dev test` installs the packages when they are
missing; under CI (CI=true) a missing binary fails the test loudly, locally
it skips with the reason. The S3 endpoint is moto's server (a pip package in
the test extra): a real HTTP server that speaks the S3 REST API, in a thread.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.support import free_port

PG_USER = "ccapi"
PG_PASSWORD = "ccapi-test-pw"
PG_DATABASE = "ccapi"
# Durability is pointless for a cluster that lives for one test run; without
# fsync, initdb and every commit are several times faster.
_PG_FAST = ("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str) -> None:
    """A server's binary is not installed: fail under CI, skip locally."""
    reason = f"{what} is not installed (scripts/dev test installs it: apt-get install postgresql redis-server)"
    if in_ci():
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def postgres_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<major>/bin that has initdb."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        return None
    return Path(max(found, key=lambda p: int(Path(p).parent.parent.name))).parent


def redis_server_bin() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
    )


# -- PostgreSQL -----------------------------------------------------------------


@dataclass
class PostgresServer:
    port: int
    socket_dir: Path
    url: str  # the default database, owned by PG_USER
    bin_dir: Path | None = None
    data: Path | None = None

    def stop(self) -> None:
        """Stop the server (fast shutdown: sessions are disconnected), files kept."""
        assert self.bin_dir is not None and self.data is not None
        _run(_as_postgres(self.bin_dir / "pg_ctl", "stop", "-D", self.data, "-m", "fast", "-w", "-t", "30"))

    def start(self) -> None:
        """Start it again after `stop`, on the same port."""
        assert self.bin_dir is not None and self.data is not None
        result = _pg_ctl_start(self.bin_dir, self.data, self.socket_dir, self.data.parent / "postgres.log", self.port)
        if result.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not restart:\n{result.stdout}{result.stderr}")

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        """A superuser connection over the cluster's unix socket (trust auth)."""
        return psycopg.connect(
            host=str(self.socket_dir), port=self.port, user="postgres", dbname="postgres", autocommit=True
        )

    def create_database(self, name: str) -> str:
        """A new empty database owned by PG_USER; its `postgresql://` URL."""
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}" OWNER {PG_USER}')
        return self.url_for(name)

    def url_for(self, database: str) -> str:
        return f"postgresql://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{self.port}/{database}"


def _as_postgres(*args: str | Path) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *map(str, args)] if os.geteuid() == 0 else list(map(str, args))


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """initdb a cluster in a temporary directory, start it on 127.0.0.1:<free
    port>, create PG_USER (password auth over TCP) and PG_DATABASE; stop it
    with `pg_ctl stop -m fast` and remove its files at the end."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        missing("PostgreSQL (/usr/lib/postgresql/*/bin/initdb)")
        raise AssertionError("unreachable")
    # Not under pytest's tmp_path: its parents are private to root, and the
    # server runs as the postgres user.
    root = Path(tempfile.mkdtemp(prefix="ccapi-pg-"))
    data, sockets, log = root / "data", root / "run", root / "postgres.log"
    sockets.mkdir()
    if os.geteuid() == 0:
        for path in (root, sockets):
            shutil.chown(path, "postgres", "postgres")
    started = False
    try:
        _run(
            _as_postgres(
                bin_dir / "initdb",
                "-D",
                data,
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            )
        )
        port = _start_postgres(bin_dir, data, sockets, log)
        started = True
        server = PostgresServer(port, sockets, "", bin_dir, data)
        with server.admin() as conn:
            conn.execute(f"CREATE ROLE {PG_USER} LOGIN PASSWORD '{PG_PASSWORD}'")
            conn.execute(f"CREATE DATABASE {PG_DATABASE} OWNER {PG_USER}")
        server.url = server.url_for(PG_DATABASE)
        yield server
    finally:
        if started:
            subprocess.run(
                _as_postgres(bin_dir / "pg_ctl", "stop", "-D", data, "-m", "fast", "-w", "-t", "30"),
                capture_output=True,
                check=False,
            )
        shutil.rmtree(root, ignore_errors=True)


def _start_postgres(bin_dir: Path, data: Path, sockets: Path, log: Path) -> int:
    """pg_ctl start on a free port; a few tries, as another process may take the port first."""
    for _ in range(3):
        port = free_port()
        result = _pg_ctl_start(bin_dir, data, sockets, log, port)
        if result.returncode == 0:
            return port
    raise RuntimeError(f"PostgreSQL did not start:\n{result.stdout}{result.stderr}\n{_tail(log)}")


def _pg_ctl_start(bin_dir: Path, data: Path, sockets: Path, log: Path, port: int) -> subprocess.CompletedProcess[str]:
    listen = ("-c", "listen_addresses=127.0.0.1", "-p", str(port), "-k", str(sockets))
    options = " ".join((*listen, "-c", "max_connections=200", *_PG_FAST))
    return subprocess.run(
        _as_postgres(bin_dir / "pg_ctl", "start", "-D", data, "-l", log, "-w", "-t", "30", "-o", options),
        capture_output=True,
        text=True,
        check=False,
    )


# -- Redis ------------------------------------------------------------------------


@dataclass
class RedisServer:
    port: int
    url: str
    binary: str = ""
    root: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        """Stop the server (nothing is persisted: its counters are gone)."""
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None

    def start(self) -> None:
        """Start it again after `stop`, on the same port."""
        assert self.root is not None
        self.proc = _spawn_redis(self.binary, self.root, self.port)
        if self.proc is None:
            raise RuntimeError(f"redis-server did not restart:\n{_tail(self.root / 'redis.log')}")


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    """`redis-server` on 127.0.0.1:<free port>, nothing persisted; stopped at the end."""
    binary = redis_server_bin()
    if binary is None:
        missing("Redis (redis-server)")
        raise AssertionError("unreachable")
    root = Path(tempfile.mkdtemp(prefix="ccapi-redis-"))
    try:
        for _ in range(3):
            port = free_port()
            proc = _spawn_redis(binary, root, port)
            if proc is not None:
                break
        else:
            raise RuntimeError(f"redis-server did not start:\n{_tail(root / 'redis.log')}")
        server = RedisServer(port, f"redis://127.0.0.1:{port}/0", binary, root, proc)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _spawn_redis(binary: str, root: Path, port: int) -> subprocess.Popen[bytes] | None:
    """redis-server on `port`, ready; None if it did not start (e.g. the port was taken)."""
    # fmt: off
    cmd = [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(root), "--daemonize", "no", "--logfile", "",
    ]
    # fmt: on
    log = (root / "redis.log").open("ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    if _wait_redis(proc, port):
        return proc
    proc.kill()
    proc.wait(5)
    return None


def _wait_redis(proc: subprocess.Popen[bytes], port: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False  # e.g. the port was taken meanwhile
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return True
        except OSError:
            pass
        time.sleep(0.02)
    return False


def _run(cmd: list[str]) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass(frozen=True)
class S3Server:
    url: str
    bucket: str
    access_key_id: str = "ccapi-test-key"
    secret_access_key: str = "ccapi-test-secret"

    def gateway_env(self, prefix: str = "") -> dict[str, str]:
        """The environment that puts a gateway's files in this bucket."""
        return {
            "CCAPI_FILES_BACKEND": "s3",
            "CCAPI_S3__BUCKET": self.bucket,
            "CCAPI_S3__PREFIX": prefix,
            "CCAPI_S3__ENDPOINT_URL": self.url,
            "CCAPI_S3__REGION": "us-east-1",
            "CCAPI_S3__ACCESS_KEY_ID": self.access_key_id,
            "CCAPI_S3__SECRET_ACCESS_KEY": self.secret_access_key,
            "CCAPI_S3__TIMEOUT": "10",
        }

    def objects(self) -> dict[str, tuple[str, bytes]]:
        """Every object in the bucket: key -> (content type, bytes), read with boto3."""
        client = self.client()
        found = {}
        for item in client.list_objects_v2(Bucket=self.bucket).get("Contents", []):
            obj = client.get_object(Bucket=self.bucket, Key=item["Key"])
            found[item["Key"]] = (obj["ContentType"], obj["Body"].read())
        return found

    def client(self):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )


@contextmanager
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port, with one empty bucket."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        s3 = S3Server(f"http://127.0.0.1:{port}", f"ccapi-files-{uuid.uuid4().hex[:8]}")
        s3.client().create_bucket(Bucket=s3.bucket)
        yield s3
    finally:
        server.stop()


# -- pytest fixtures (import them into a conftest or test module) ----------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server() as server:
        yield server.url


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server
