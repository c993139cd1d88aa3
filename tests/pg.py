"""A throwaway PostgreSQL for the tests: Debian's `postgresql` binaries, a temp dir, loopback.

initdb refuses to run as root, so as root the server runs as the `postgres` user
(runuser), in a temp dir handed to it. It listens on 127.0.0.1 on a port chosen at run
time, trusts local connections, and skips fsync (a test server's data is thrown away)
unless it is started `durable`.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass

from tests.procs import free_port

BIN_GLOB = "/usr/lib/postgresql/*/bin"


def find_bin() -> str | None:
    """The newest installed server's bin folder, or None."""
    found = sorted(
        (d for d in glob.glob(BIN_GLOB) if os.path.exists(os.path.join(d, "initdb"))),
        key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0,
    )
    return found[-1] if found else None


@dataclass
class PostgresServer:
    bin_dir: str
    root: str
    port: int
    user: str | None  # run the server as this user (we are root), or as ourselves
    durable: bool = False  # fsync and synchronous commits, as a production server runs

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    @property
    def data(self) -> str:
        return os.path.join(self.root, "data")

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=120)

    def _ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run(os.path.join(self.bin_dir, "pg_ctl"), "-D", self.data, *args, check=check)

    def init(self) -> None:
        self._run(
            os.path.join(self.bin_dir, "initdb"), "-D", self.data, "-U", "postgres",
            "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C",
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c max_connections=200"
        )
        if not self.durable:  # a commit may then be lost to a crash (pg_ctl stop -m immediate)
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._ctl("-o", options, "-l", os.path.join(self.root, "server.log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "stop", check=False)

    def running(self) -> bool:
        return self._ctl("status", check=False).returncode == 0

    def log(self) -> str:
        try:
            with open(os.path.join(self.root, "server.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def start_server(*, durable: bool = False) -> PostgresServer:
    """initdb and start a server in a new temp dir. Raises if it cannot.

    `durable`: a commit is on disk when it returns (fsync, synchronous_commit), so it
    survives `stop(mode="immediate")`, and what a commit costs is what it costs in
    production. Otherwise the server skips both: faster, for data thrown away anyway.
    """
    bin_dir = find_bin()
    if bin_dir is None:
        raise FileNotFoundError(f"no PostgreSQL server in {BIN_GLOB} (Debian package postgresql)")
    user = None
    root = tempfile.mkdtemp(prefix="receiver-pg-")
    if os.geteuid() == 0:  # initdb: "cannot be run as root"
        user = "postgres"
        pw = pwd.getpwnam(user)
        os.chmod(root, 0o700)
        os.chown(root, pw.pw_uid, pw.pw_gid)
    server = PostgresServer(bin_dir, root, free_port(), user, durable)
    try:
        server.init()
        server.start()
    except (subprocess.SubprocessError, OSError) as e:
        detail = getattr(e, "stderr", "") or ""
        server.stop(mode="immediate")
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"cannot start PostgreSQL: {e} {detail}{server.log()}") from e
    return server


def remove(server: PostgresServer) -> None:
    server.stop(mode="immediate")
    deadline = time.monotonic() + 10
    while server.running() and time.monotonic() < deadline:
        time.sleep(0.1)
    shutil.rmtree(server.root, ignore_errors=True)
