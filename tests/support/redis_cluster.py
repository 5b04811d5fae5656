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

    RedisProcess(lambda p: server_args(p, "--requirepass", "pw")).start()    # anything else

Cleanup is always done by `stop()` (the context managers call it): SIGCONT (a stopped
process handles SIGTERM only once continued), SIGTERM, SIGKILL after 5 s, temp dirs removed.
The fixture functions in tests/support/redis_fixtures.py wrap these.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from redis import Redis

from tests.support.redis_server import find_redis_server, free_port

HOST = "127.0.0.1"
START_TIMEOUT = 10.0
SERVICE_NAME = "mymaster"
# redis-cli lives next to redis-server (both come from the same package).
REDIS_CLI_NAME = "redis-cli"

# The arguments after the binary, for the process's current port(s) and directory.
ArgsFor = Callable[["RedisProcess"], list[str]]


class StartError(RuntimeError):
    pass


class _PortTakenError(Exception):
    pass


def redis_cli_for(server_binary: str) -> str:
    return str(Path(server_binary).with_name(REDIS_CLI_NAME))


def answers(host: str, port: int, tls: ssl.SSLContext | None = None,
            timeout: float = 0.5) -> bool:
    """True when something on host:port replies to PING (+PONG, or an error like -NOAUTH)."""
    try:
        with contextlib.ExitStack() as stack:
            sock = stack.enter_context(socket.create_connection((host, port), timeout=timeout))
            if tls is not None:
                sock = stack.enter_context(tls.wrap_socket(sock, server_hostname=host))
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
            return reply[:1] in (b"+", b"-")
    except OSError:
        return False


class RedisProcess:
    """One redis-server process (a server, a cluster node, a replica or a sentinel)."""

    def __init__(
        self,
        args_for: ArgsFor,
        *,
        binary: str | None = None,
        name: str = "redis",
        ports: int = 1,
        tls: ssl.SSLContext | None = None,
        password: str | None = None,
    ) -> None:
        found = binary or find_redis_server()
        if found is None:
            raise FileNotFoundError("redis-server not found (set REDIS_SERVER)")
        self.binary = found
        self.args_for = args_for
        self.name = name
        self.tls = tls  # to wait for readiness on a TLS-only server
        self.password = password  # for client()
        self.host = HOST
        self.port = 0
        self.extra_ports: list[int] = []  # e.g. the cluster bus port
        self._ports = ports
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._paused = False

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def directory(self) -> Path:
        assert self._dir is not None
        return Path(self._dir.name)

    @property
    def log_path(self) -> Path:
        return self.directory / f"{self.name}.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, size: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def start(self) -> None:
        """Start on free ports (the same ones again after a kill/stop) and wait for PING."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix=f"{self.name}-test-")
        keep_ports = self.port != 0
        for _attempt in range(5):
            if not keep_ports:
                ports = _distinct_free_ports(self._ports)
                self.port, self.extra_ports = ports[0], ports[1:]
            self._spawn()
            try:
                self._wait_ready()
                return
            except _PortTakenError:
                if keep_ports:
                    raise StartError(f"{self.name}: port {self.port} is taken") from None
        raise StartError(f"{self.name}: could not find free ports")

    def stop(self) -> None:
        self._terminate()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def kill(self) -> None:
        """SIGKILL: the port stops answering at once; the directory is kept for start()."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(5)
        self._paused = False

    def pause(self) -> None:
        """SIGSTOP: the kernel still accepts connections, but nothing answers."""
        self._signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        self._signal(signal.SIGCONT)
        self._paused = False

    def client(self, **kwargs: object) -> Redis:
        """A synchronous redis-py client for fixture-side commands (not for the proofs)."""
        options: dict[str, object] = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0,
                                      "password": self.password}
        options.update(kwargs)
        return Redis(host=self.host, port=self.port, **options)  # type: ignore[arg-type]

    def __enter__(self) -> RedisProcess:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- internals -----------------------------------------------------------------------

    def _spawn(self) -> None:
        args = [self.binary, *self.args_for(self)]
        args += ["--logfile", str(self.log_path), "--daemonize", "no"]
        with contextlib.suppress(FileNotFoundError):
            self.log_path.unlink()  # a stale log would hide why this start failed
        self._process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._paused = False

    def _wait_ready(self) -> None:
        process = self._process
        assert process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
                self._process = None
                text = stderr + self.log_tail()
                if "Address already in use" in text:
                    raise _PortTakenError
                raise StartError(f"{self.name} exited at start:\n{text[-3000:]}")
            if answers(self.host, self.port, self.tls):
                if process.stderr:
                    process.stderr.close()
                return
            time.sleep(0.01)
        self._terminate()
        raise StartError(f"{self.name} did not answer PING within {START_TIMEOUT} s")

    def _terminate(self) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            if self._paused:
                process.send_signal(signal.SIGCONT)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if process.stderr and not process.stderr.closed:
            process.stderr.close()
        self._process = None
        self._paused = False

    def _signal(self, signum: signal.Signals) -> None:
        if not self.running:
            raise RuntimeError(f"{self.name} is not running")
        assert self._process is not None
        self._process.send_signal(signum)


def _distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def server_args(process: RedisProcess, *extra: str) -> list[str]:
    """A plain, non-persistent server on the process's port. `extra` comes last, so it can
    override (for a TLS-only server: "--tls-port", str(process.port), "--port", "0")."""
    return [
        "--port", str(process.port),
        "--bind", HOST,
        "--save", "",
        "--appendonly", "no",
        "--dir", str(process.directory),
        "--protected-mode", "no",
        *extra,
    ]


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
