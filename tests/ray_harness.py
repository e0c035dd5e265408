"""A real local Ray cluster for the tests: a head and a worker node on 127.0.0.1, CPU only, one CPU each.

Each node is a `ray start --block` process in a session of its own; the node's raylet starts its worker processes
in process groups of their own but in that session, so a node is stopped by signalling every process of its
session, by pid (never `ray stop`, which stops every Ray process on the machine, other users' too). Every port is
chosen free; the temporary directory is the test's own.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

RAY = Path(sys.executable).with_name("ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    address: str
    temp: Path
    nodes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def running(self, proc: subprocess.Popen[bytes], title: str) -> bool:
        """Whether a process of this node runs `title` (Ray names a worker by what it runs: ray::Class.method)."""
        return any(cmdline(pid).startswith(title) for pid in session(proc.pid))

    def kill_node(self, proc: subprocess.Popen[bytes]) -> None:
        """Kill a node at once: its `ray start`, raylet and worker processes."""
        _signal(session(proc.pid), signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        for proc in reversed(self.nodes):
            _signal(session(proc.pid), signal.SIGTERM)
        deadline = time.time() + 10
        while time.time() < deadline and any(session(p.pid) for p in self.nodes):
            time.sleep(0.2)
        for proc in self.nodes:
            self.kill_node(proc)


def session(sid: int) -> list[int]:
    """The pids of the processes of a session (from /proc)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[3]) == sid:  # state, ppid, pgrp, session
                pids.append(int(d.name))
    return pids


def cmdline(pid: int) -> str:
    try:
        return (
            (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _node_ports() -> list[str]:
    low = random.randrange(20000, 59000, 200)

    def outside() -> int:  # a free port that is not one of the workers' (Ray refuses overlaps)
        while (port := free_port()) in range(low, low + 200):
            pass
        return port

    ports = {
        "--node-manager-port": outside(),
        "--object-manager-port": outside(),
        "--dashboard-agent-listen-port": outside(),
        "--dashboard-agent-grpc-port": outside(),
        "--runtime-env-agent-port": outside(),
        "--metrics-export-port": outside(),
        "--min-worker-port": low,
        "--max-worker-port": low + 199,
    }
    return [f"{k}={v}" for k, v in ports.items()]


def _die_with_parent() -> None:
    """In the child: SIGTERM when the test process dies, even by SIGKILL (`ray start --block` then stops its node)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    with open(log, "wb") as out:
        return subprocess.Popen(
            [str(RAY), "start", "--block", "--disable-usage-stats", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )


def _wait_started(proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        if b"Ray runtime started" in log.read_bytes():
            return
        time.sleep(0.2)
    raise RuntimeError(f"ray start did not start in {timeout} s:\n{log.read_text()[-2000:]}")


_NODES = """
import sys, time, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
deadline = time.time() + 60
while sum(1 for x in ray.nodes() if x["Alive"]) < int(sys.argv[2]) and time.time() < deadline:
    time.sleep(0.2)
print(sum(1 for x in ray.nodes() if x["Alive"]))
"""


def _wait_for_nodes(address: str, n: int) -> None:
    p = subprocess.run(
        [sys.executable, "-c", _NODES, address, str(n)], capture_output=True, text=True, timeout=120
    )
    if p.stdout.strip() != str(n):
        raise RuntimeError(f"the Ray cluster at {address} did not come up with {n} nodes: {p.stderr[-2000:]}")


@contextlib.contextmanager
def local_cluster(temp: Path) -> Iterator[Cluster]:
    """A head and a worker node, 1 CPU each, on 127.0.0.1; both stopped on exit, also when the test failed."""
    temp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cluster = Cluster(f"127.0.0.1:{port}", temp)
    common = [
        "--node-ip-address=127.0.0.1",
        "--num-cpus=1",
        "--num-gpus=0",
        "--object-store-memory=100000000",
    ]
    try:
        head = [
            "--head",
            f"--port={port}",
            "--include-dashboard=false",
            f"--dashboard-port={free_port()}",
            f"--temp-dir={temp}",
        ]
        cluster.nodes.append(_start([*head, *common, *_node_ports()], temp / "head.log"))
        _wait_started(cluster.nodes[0], temp / "head.log")
        worker = [f"--address={cluster.address}"]
        cluster.nodes.append(_start([*worker, *common, *_node_ports()], temp / "worker.log"))
        _wait_started(cluster.nodes[1], temp / "worker.log")
        _wait_for_nodes(cluster.address, 2)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(temp, ignore_errors=True)
