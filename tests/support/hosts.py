"""A lab of "hosts" on one machine: Linux network namespaces joined by a bridge the lab creates.

Each host is a network namespace with one veth leg on the lab's bridge and an address from
198.18.0.0/15 (RFC 2544, reserved for benchmarking). Nothing routes out of the bridge, so lab
traffic never leaves the machine. The test process itself is the "controller" host: the bridge
carries an address too, so a test can reach every host directly, and it can run code *on* a host,
in a thread that has entered that host's namespace (:meth:`Host.thread`), or start any process
there (:meth:`Host.popen`, ``ip netns exec``).

Faults are what a real network does, not what loopback does:

- :meth:`Lab.partition` adds iptables DROP rules inside the namespaces, so TCP goes silent: no
  FIN, no RST, bytes written into the socket are neither delivered nor refused. :meth:`Lab.heal`
  removes them, and the kernel retransmits what it still holds.
- :meth:`Lab.freeze` SIGSTOPs every process on a host (``ip netns pids``, so a hub's workers
  too) and :meth:`Lab.thaw` continues them; :meth:`Lab.kill` SIGKILLs them all.

The lab needs root, ``ip`` (iproute2) and ``iptables``; ``lab_or_skip`` skips with the reason when
they are missing. Everything it made (namespaces, veths, the bridge, processes) is removed in
:meth:`Lab.close`, which the ``lab`` fixture calls even when a test fails; labs left by a killed
test run are removed when the next lab starts. Labs of concurrent test runs get different /24s
and interface names, so they never see each other.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import pytest

T = TypeVar("T")
Direction = Literal["both", "in", "out"]

_PREFIX = "hublab"
_LOCK = Path("/tmp/hub-lab.lock")
_CLONE_NEWNET = 0x40000000


def missing_requirements() -> str | None:
    """Why a lab cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "the many-hosts lab needs root (network namespaces and iptables)"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            return f"the many-hosts lab needs `{tool}`: scripts/test.sh installs iproute2, iptables"
    return None


def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_labs() -> None:
    """Remove the namespaces and bridges of labs whose test process is gone (it was killed)."""
    names = _sh("ip", "netns", "list", check=False).stdout.split()
    for name in names:
        parts = name.split("-")
        if len(parts) >= 3 and parts[0] == _PREFIX and parts[1].isdigit():
            if not _pid_alive(int(parts[1])):
                for pid in _sh("ip", "netns", "pids", name, check=False).stdout.split():
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.kill(int(pid), signal.SIGKILL)
                _sh("ip", "netns", "del", name, check=False)
    links = _sh("ip", "-o", "link", "show", "type", "bridge", check=False).stdout.splitlines()
    for line in links:
        dev = line.split(":")[1].strip().split("@")[0]
        if dev.startswith("hlb") and dev[3:].isdigit():
            owner = Path(f"/tmp/hub-lab-{dev}.pid")
            pid = int(owner.read_text()) if owner.exists() else 0
            if not pid or not _pid_alive(pid):
                _sh("ip", "link", "del", dev, check=False)
                owner.unlink(missing_ok=True)


def _enter_netns(path: str) -> None:
    """Move the calling *thread* into the network namespace at ``path`` (setns(2))."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


class Host:
    """One namespace on the lab's bridge, with its own address, ports and iptables."""

    def __init__(self, lab: Lab, name: str, index: int) -> None:
        self.lab = lab
        self.name = name
        self.netns = f"{_PREFIX}-{os.getpid()}-{lab.number}-{name}"
        self.address = f"{lab.subnet}.{index}"
        self.veth = f"hl{lab.number}v{index}"
        self.processes: list[subprocess.Popen[bytes]] = []

    def __repr__(self) -> str:
        return f"Host({self.name} {self.address})"

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run on this host: ``ip netns exec`` execs it, so its pid is the process's."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start a process on this host; the lab stops it at close."""
        proc: subprocess.Popen[bytes] = subprocess.Popen(self.exec_argv(argv), **kwargs)
        self.processes.append(proc)
        return proc

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a short command on this host and return its output."""
        return _sh(*self.exec_argv(argv), check=check)

    def pids(self) -> list[int]:
        """Every process in this host's namespace, children included."""
        out = _sh("ip", "netns", "pids", self.netns, check=False).stdout.split()
        return [int(pid) for pid in out]

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Run the body in this host's namespace, on the calling thread (a thread of its own)."""
        here = f"/proc/self/task/{threading.get_native_id()}/ns/net"
        back = os.open(here, os.O_RDONLY)
        try:
            _enter_netns(f"/var/run/netns/{self.netns}")
            yield
        finally:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.setns(back, _CLONE_NEWNET)
            os.close(back)

    def thread(self, target: Callable[[], T], name: str = "") -> HostThread[T]:
        """Start ``target`` in a thread that lives on this host: every socket it opens is here.

        An asyncio loop run by ``target`` (``asyncio.run(main())``) is a client on this host, in
        the test's own process; its result or exception comes back from :meth:`HostThread.join`.
        """
        thread = HostThread(self, target, name or f"{self.name}-thread")
        thread.start()
        return thread


class HostThread(threading.Thread):
    """A thread in a host's namespace whose result (or exception) ``join`` hands back."""

    def __init__(self, host: Host, target: Callable[[], T], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._host = host
        self._fn = target
        self._result: Any = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            _enter_netns(f"/var/run/netns/{self._host.netns}")
            self._result = self._fn()
        except BaseException as exc:
            self._error = exc

    def result(self, timeout: float | None = None) -> Any:
        self.join(timeout)
        if self.is_alive():
            raise TimeoutError(f"{self.name} still running after {timeout}s")
        if self._error is not None:
            raise self._error
        return self._result


class Lab:
    """A bridge and the hosts on it; build one with :func:`lab_or_skip` or the ``lab`` fixture."""

    def __init__(self) -> None:
        self.hosts: dict[str, Host] = {}
        self._rules: list[tuple[Host, list[str]]] = []
        self._frozen: set[str] = set()
        self.number, self.subnet, self.bridge = self._claim()
        self.controller_address = f"{self.subnet}.254"

    @staticmethod
    def _claim() -> tuple[int, str, str]:
        """Take a free lab number (its /24 and names) under a lock, so concurrent runs differ."""
        with _LOCK.open("a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            _remove_stale_labs()
            taken = _sh("ip", "-o", "link", "show", check=False).stdout
            for number in range(1, 250):
                bridge = f"hlb{number}"
                if f" {bridge}:" not in taken and f" {bridge}@" not in taken:
                    subnet = f"198.18.{number}"
                    _sh("ip", "link", "add", bridge, "type", "bridge")
                    Path(f"/tmp/hub-lab-{bridge}.pid").write_text(str(os.getpid()))
                    _sh("ip", "addr", "add", f"{subnet}.254/24", "dev", bridge)
                    _sh("ip", "link", "set", bridge, "up")
                    return number, subnet, bridge
        raise RuntimeError("no free lab number: 249 labs are running")

    def add_host(self, name: str) -> Host:
        """A new host named ``name``, up on the bridge with the next address."""
        if name in self.hosts:
            raise ValueError(f"host {name} exists")
        host = Host(self, name, len(self.hosts) + 1)
        self.hosts[name] = host
        _sh("ip", "netns", "add", host.netns)
        _sh(
            "ip",
            "link",
            "add",
            host.veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            host.netns,
        )
        _sh("ip", "link", "set", host.veth, "master", self.bridge, "up")
        host.run("ip", "link", "set", "lo", "up")
        host.run("ip", "addr", "add", f"{host.address}/24", "dev", "eth0")
        host.run("ip", "link", "set", "eth0", "up")
        # Many sockets per host, as on a real client or hub machine.
        host.run("sysctl", "-qw", "net.ipv4.ip_local_port_range=10000 65000", check=False)
        host.run("sysctl", "-qw", "net.core.somaxconn=65535", check=False)
        return host

    def add_hosts(self, *names: str) -> list[Host]:
        return [self.add_host(name) for name in names]

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    # Faults ---------------------------------------------------------------------------------

    def partition(
        self,
        a: Host,
        b: Host | Sequence[Host] | None = None,
        direction: Direction = "both",
        controller: bool = False,
    ) -> None:
        """Drop the traffic between ``a`` and ``b`` (a host, several, or every other when None).

        ``direction`` is seen from ``a``: "out" drops what ``a`` sends, "in" what it receives,
        "both" both. Rules live in ``a``'s namespace, so the peers' sockets go silent too.
        ``controller`` also cuts ``a`` off from the test process's own address.
        """
        peers = self._peers(a, b, controller)
        for peer in peers:
            if direction in ("both", "out"):
                self._rule(a, ["OUTPUT", "-d", peer, "-j", "DROP"])
            if direction in ("both", "in"):
                self._rule(a, ["INPUT", "-s", peer, "-j", "DROP"])

    def isolate(self, a: Host, direction: Direction = "both") -> None:
        """Partition ``a`` from every other host and from the controller."""
        self.partition(a, None, direction, controller=True)

    def heal(self, a: Host | None = None) -> None:
        """Remove the DROP rules added on ``a`` (on every host when None)."""
        keep: list[tuple[Host, list[str]]] = []
        for host, rule in self._rules:
            if a is None or host is a:
                host.run("iptables", "-w", "-D", *rule, check=False)
            else:
                keep.append((host, rule))
        self._rules = keep

    def _peers(self, a: Host, b: Host | Sequence[Host] | None, controller: bool) -> list[str]:
        if b is None:
            peers = [h.address for h in self.hosts.values() if h is not a]
        elif isinstance(b, Host):
            peers = [b.address]
        else:
            peers = [h.address for h in b]
        if controller:
            peers.append(self.controller_address)
        return peers

    def _rule(self, host: Host, rule: list[str]) -> None:
        host.run("iptables", "-w", "-A", *rule)
        self._rules.append((host, rule))

    def freeze(self, host: Host) -> None:
        """SIGSTOP every process on ``host``: it holds its sockets and answers nothing."""
        self._frozen.add(host.name)
        for pid in host.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def thaw(self, host: Host) -> None:
        """SIGCONT what :meth:`freeze` stopped."""
        for pid in host.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self._frozen.discard(host.name)

    def kill(self, host: Host) -> None:
        """SIGKILL every process on ``host``, as when the machine loses power."""
        for pid in host.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for proc in host.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)

    # Teardown -------------------------------------------------------------------------------

    def close(self) -> None:
        """Remove everything the lab made, processes first; safe to call twice."""
        self.heal()
        for host in self.hosts.values():
            if host.name in self._frozen:
                self.thaw(host)
            self.kill(host)
            # Deleting the veth now, not with the namespace (the kernel does that later), frees
            # its name for the next lab at once.
            _sh("ip", "link", "del", host.veth, check=False)
            _sh("ip", "netns", "del", host.netns, check=False)
        self.hosts.clear()
        _sh("ip", "link", "del", self.bridge, check=False)
        Path(f"/tmp/hub-lab-{self.bridge}.pid").unlink(missing_ok=True)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def lab_or_skip() -> Lab:
    """A new lab, or a pytest skip that says why this machine cannot run one."""
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)
    return Lab()
