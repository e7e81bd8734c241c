"""A two-node Ray cluster on this machine for tests: a head and a second node, each a `ray start --block` process.

Each node runs in its own process group and on its own ports, under a temp dir of its own, so stopping it ends only
the processes it started: a bare `ray stop` would end every Ray session on the machine, other users' included.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

RAY = str(Path(sys.executable).with_name("ray"))
READY = "block forever"  # `ray start --block` prints this once the node is up


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalCluster:
    def __init__(self, nodes: int = 2, cpus_per_node: int = 1, env: dict | None = None):
        self.nodes, self.cpus = nodes, cpus_per_node
        # short: Ray's socket paths under the temp dir must fit in 107 characters
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rr-ray-", dir="/tmp"))
        # a token of this cluster's own, as on a real one (otherwise a token in ~/.ray decides, for the head only)
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
                    "RAY_AUTH_TOKEN": secrets.token_hex(32), **(env or {})}
        self.address = f"127.0.0.1:{free_port()}"
        self.processes: list[subprocess.Popen] = []

    def _node_args(self) -> list[str]:
        ports = ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
                 "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port")
        args = ["--block", "--num-cpus", str(self.cpus), "--object-store-memory", str(100 * 2**20),
                "--temp-dir", str(self.temp_dir), "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
        for option in ports:
            args += [option, str(free_port())]
        return args

    def _start_node(self, args: list[str], timeout: float = 90) -> None:
        log = self.temp_dir / f"node-{len(self.processes)}.out"
        with open(log, "w") as out:
            process = subprocess.Popen([RAY, "start", *args, *self._node_args()], stdout=out, stderr=subprocess.STDOUT,
                                       env=self.env, start_new_session=True)
        self.processes.append(process)
        deadline = time.time() + timeout
        while READY not in log.read_text():
            if process.poll() is not None or time.time() > deadline:
                output = log.read_text()[-3000:]
                self.stop()
                raise RuntimeError(f"ray start {' '.join(args[:2])} failed:\n{output}")
            time.sleep(0.5)

    def start(self) -> LocalCluster:
        port = self.address.rsplit(":", 1)[1]
        self._start_node(["--head", "--port", port, "--include-dashboard", "false", "--dashboard-port",
                          str(free_port()), "--ray-client-server-port", str(free_port())])
        for _ in range(self.nodes - 1):
            self._start_node(["--address", self.address])
        return self

    def pids(self) -> set[int]:
        """Every live process of this cluster: the `ray start` processes and their descendants (GCS, raylets, the
        raylets' workers)."""
        found = set()
        for process in self.processes:
            try:
                root = psutil.Process(process.pid)
                found |= {root.pid, *(child.pid for child in root.children(recursive=True))}
            except psutil.NoSuchProcess:
                pass
        return found

    def stop(self, grace: float = 3) -> None:
        """SIGTERM to every process of the cluster, SIGKILL to those left after `grace` seconds (a `ray start
        --block` process outlives SIGTERM), then to the nodes' process groups."""
        alive = [psutil.Process(pid) for pid in self.pids() if psutil.pid_exists(pid)]
        for process in alive:
            try:
                process.terminate()
            except psutil.NoSuchProcess:
                pass
        _, left = psutil.wait_procs(alive, timeout=grace)
        for process in left:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        for process in self.processes:  # anything that left the tree but kept the node's process group
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            process.wait(timeout=10)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
