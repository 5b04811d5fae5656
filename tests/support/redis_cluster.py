"""Real Redis deployments for tests: a 3-master Cluster, a Sentinel setup, and single servers
with ACL users or TLS. Every process listens on a free 127.0.0.1 port and keeps no data.

    with LocalCluster() as cluster:        # 3 masters, `redis-cli --cluster create`
        cluster.url                        # redis+cluster://127.0.0.1:p1,127.0.0.1:p2,...
        cluster.keys_by_node("prefix*")    # {"127.0.0.1:p1": [...], ...}

    with LocalSentinel() as setup:         # one master, one replica, one sentinel
        setup.url                          # redis+sentinel://127.0.0.1:<sentinel>/mymaster
        old = setup.master_address()
        setup.kill_master()                # or setup.failover() (SENTINEL FAILOVER)
        new = setup.wait_for_new_master(old)

Single servers of any kind are `RedisProcess` / `RedisServer` in tests/support/redis_server.py.

Cleanup is always done by `stop()` (the context managers call it): SIGCONT (a stopped
process handles SIGTERM only once continued), SIGTERM, SIGKILL after 5 s, temp dirs removed.
The fixture functions in tests/support/redis_fixtures.py wrap these.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from tests.support.redis_server import (
    HOST,
    RedisProcess,
    StartError,
    server_args,
)

SERVICE_NAME = "mymaster"
# redis-cli lives next to redis-server (both come from the same package).
REDIS_CLI_NAME = "redis-cli"

def redis_cli_for(server_binary: str) -> str:
    return str(Path(server_binary).with_name(REDIS_CLI_NAME))


def _wait(check: Callable[[], bool], timeout: float, what: str,
          diagnostics: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:  # noqa: S110 - a node that is not ready yet may refuse or time out
            pass
        if time.monotonic() > deadline:
            raise StartError(f"timed out after {timeout} s waiting for {what}\n{diagnostics()}")
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------
# Redis Cluster


class LocalCluster:
    """Three masters, no replicas, all 16384 slots covered (`redis-cli --cluster create`)."""

    def __init__(self, masters: int = 3, binary: str | None = None) -> None:
        # Two ports per node: the bus port is given explicitly (cluster-port, Redis 7),
        # since port + 10000 may be out of range or taken.
        self.nodes = [
            RedisProcess(_cluster_node_args, binary=binary, name=f"cluster-node-{i}", ports=2)
            for i in range(masters)
        ]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{n.host}:{n.port}" for n in self.nodes)

    def start(self) -> None:
        try:
            for node in self.nodes:
                node.start()
            self._create()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def keys_by_node(self, pattern: str) -> dict[str, list[str]]:
        """Every key matching `pattern`, per master (SCAN on each node, not through routing)."""
        found: dict[str, list[str]] = {}
        for node in self.nodes:
            with node.client() as client:
                found[f"{node.host}:{node.port}"] = sorted(
                    k.decode() for k in client.scan_iter(match=pattern, count=1000))
        return found

    def _create(self) -> None:
        cli = redis_cli_for(self.nodes[0].binary)
        addresses = [f"{n.host}:{n.port}" for n in self.nodes]
        result = subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0",
             "--cluster-yes"],
            capture_output=True, timeout=60, check=False,
        )
        if result.returncode != 0:
            raise StartError("redis-cli --cluster create failed:\n"
                             + result.stdout.decode(errors="replace")[-2000:]
                             + result.stderr.decode(errors="replace")[-2000:])

        def all_ok() -> bool:
            for node in self.nodes:
                with node.client() as client:
                    info = client.execute_command("CLUSTER", "INFO").decode()
                    if "cluster_state:ok" not in info or "cluster_known_nodes:" + str(
                            len(self.nodes)) not in info:
                        return False
            return True

        _wait(all_ok, 20.0, "cluster_state:ok on every node",
              lambda: "\n".join(n.log_tail(1000) for n in self.nodes))


def _cluster_node_args(node: RedisProcess) -> list[str]:
    return server_args(
        node,
        "--cluster-enabled", "yes",
        "--cluster-config-file", str(node.directory / "nodes.conf"),
        "--cluster-node-timeout", "2000",
        "--cluster-port", str(node.extra_ports[0]),
    )


# ---------------------------------------------------------------------------------------
# Redis Sentinel


# A full sync starts at once (Redis waits 5 s by default for more replicas to sync at once).
_REPLICATION_ARGS = ("--repl-diskless-sync-delay", "0")
_PROBE_KEY = "fixture:replication-probe"


class LocalSentinel:
    """One master, one replica (`--replicaof`), one sentinel monitoring them with quorum 1,
    down-after-milliseconds 1000 and failover-timeout 5000.

    `master_args` go to the first master only; `password` protects both data nodes (and is
    given to the replica and the sentinel); `sentinel_password` protects the sentinel."""

    def __init__(self, binary: str | None = None, service_name: str = SERVICE_NAME,
                 master_args: Sequence[str] = (), password: str | None = None,
                 sentinel_password: str | None = None) -> None:
        self.service_name = service_name
        self.password = password
        self.sentinel_password = sentinel_password
        self.master = RedisProcess(
            lambda p: server_args(p, *self._data_args(), *master_args), binary=binary,
            name="sentinel-master", password=password)
        self.replica = RedisProcess(self._replica_args, binary=binary, name="sentinel-replica",
                                    password=password)
        self.sentinel = RedisProcess(self._sentinel_args, binary=binary, name="sentinel",
                                     password=sentinel_password)
        self.data_nodes = [self.master, self.replica]

    def _data_args(self) -> list[str]:
        args = list(_REPLICATION_ARGS)
        if self.password:
            args += ["--requirepass", self.password, "--masterauth", self.password]
        return args

    def _replica_args(self, process: RedisProcess) -> list[str]:
        return server_args(process, *self._data_args(), "--replicaof", self.master.host,
                           str(self.master.port))

    def _sentinel_args(self, process: RedisProcess) -> list[str]:
        # Sentinel rewrites its config file (it records the state it learns): it must be a
        # writable file of its own, and it is written again for each start attempt.
        conf = process.directory / "sentinel.conf"
        conf.write_text(
            f"port {process.port}\n"
            f"bind {HOST}\n"
            "protected-mode no\n"
            f"dir {process.directory}\n"
            f"sentinel monitor {self.service_name} {self.master.host} {self.master.port} 1\n"
            f"sentinel down-after-milliseconds {self.service_name} 1000\n"
            f"sentinel failover-timeout {self.service_name} 5000\n"
            f"sentinel parallel-syncs {self.service_name} 1\n"
            + (f"sentinel auth-pass {self.service_name} {self.password}\n"
               if self.password else "")
            + (f"requirepass {self.sentinel_password}\n" if self.sentinel_password else ""),
            encoding="utf-8",
        )
        return [str(conf), "--sentinel"]

    @property
    def url(self) -> str:
        return f"redis+sentinel://{self.sentinel.host}:{self.sentinel.port}/{self.service_name}"

    def start(self) -> None:
        try:
            self.master.start()
            self.replica.start()
            _wait(self._replica_in_sync, 10.0, "the replica to sync with the master",
                  self.replica.log_tail)
            self.sentinel.start()
            _wait(self._sentinel_sees_replica, 10.0, "sentinel to discover the replica",
                  self.sentinel.log_tail)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for process in (self.sentinel, self.replica, self.master):
            process.stop()

    def __enter__(self) -> LocalSentinel:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- queries -------------------------------------------------------------------------

    def master_address(self) -> tuple[str, int]:
        """The master as the sentinel reports it now."""
        with self.sentinel.client() as client:
            host, port = client.execute_command(
                "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service_name)
            return (host.decode(), int(port))

    def master_flags(self) -> set[str]:
        """The sentinel's flags for the master ({"master"} when all is well)."""
        with self.sentinel.client() as client:
            state = client.execute_command("SENTINEL", "MASTER", self.service_name)
        flags: bytes = state.get(b"flags", b"")  # redis-py returns a dict of bytes
        return set(flags.decode().split(","))

    def process_at(self, address: tuple[str, int]) -> RedisProcess:
        for process in self.data_nodes:
            if process.address == address:
                return process
        raise LookupError(f"no data node at {address}")

    def role(self, process: RedisProcess) -> str:
        with process.client() as client:
            role: bytes = client.execute_command("ROLE")[0]
            return role.decode()

    # -- failover ------------------------------------------------------------------------

    def failover(self) -> None:
        """`SENTINEL FAILOVER <service>`: a planned failover, the old master stays up."""
        with self.sentinel.client() as client:
            client.execute_command("SENTINEL", "FAILOVER", self.service_name)

    def kill_master(self) -> tuple[str, int]:
        """SIGKILL the current master (a crash); the sentinel fails over after
        down-after-milliseconds. Returns the old master's address."""
        old = self.master_address()
        self.process_at(old).kill()
        return old

    def wait_for_new_master(self, old: tuple[str, int], timeout: float = 20.0
                            ) -> tuple[str, int]:
        """Wait until the sentinel names another master and that server says it is one."""
        found: list[tuple[str, int]] = []

        def switched() -> bool:
            address = self.master_address()
            if address == old or self.role(self.process_at(address)) != "master":
                return False
            if self.master_flags() != {"master"}:  # e.g. "disconnected" just after a switch
                return False
            found.append(address)
            return True

        _wait(switched, timeout, "the sentinel to report a new master", self.sentinel.log_tail)
        return found[-1]

    def _replica_in_sync(self) -> bool:
        """A write on the master has reached the replica. `master_link_status:up` is not
        enough: after a full sync the master starts streaming only once the replica has
        acknowledged (up to a second later), and a crash before that loses every write."""
        with self.replica.client() as replica:
            if replica.info("replication").get("master_link_status") != "up":
                return False
            with self.master.client() as master:
                master.set(_PROBE_KEY, b"1", px=60_000)
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline:
                if replica.get(_PROBE_KEY) is not None:
                    with self.master.client() as master:
                        master.delete(_PROBE_KEY)
                    return True
                time.sleep(0.01)
            return False

    def _sentinel_sees_replica(self) -> bool:
        with self.sentinel.client() as client:
            replicas = client.execute_command("SENTINEL", "REPLICAS", self.service_name)
        for entry in replicas:  # redis-py parses each entry into a dict of bytes
            fields = (entry if isinstance(entry, dict)
                      else dict(zip(entry[::2], entry[1::2], strict=True)))
            flags = fields.get(b"flags", b"").decode()
            if (fields.get(b"port") == str(self.replica.port).encode()
                    and flags == "slave"
                    and fields.get(b"master-link-status") == b"ok"):
                return True
        return False
