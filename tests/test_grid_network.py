"""A local grid's Ray is closed to the network: no process of it listens on an address other than the loopback
one, its servers refuse a call without its token, and the token shows in no command line and no file of it.

The sockets are read from /proc (Linux): /proc/net/{tcp,tcp6,udp,udp6} hold every socket of this network
namespace, /proc/PID/fd names the ones of each process of the Ray that this test starts."""

import ipaddress
import os

import grpc
import pytest

from timnet_ser.grid import pool as grid

LISTEN = "0A"  # the TCP state in /proc/net/tcp*; every bound UDP socket receives, whatever its state
RAY_NAMES = {"gcs_server", "raylet"}


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray started as a grid starts one, with an actor and a task run so that worker processes exist.

    Ray is imported first, as by a program that embeds the grid (or by run_grid itself): Ray reads
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER when imported, and the loopback address must hold anyway.
    Yields (ray, the pids of the actor and the task's worker)."""
    import ray
    grid.start_local_ray(cpus=1, gpus=0, object_store_bytes=128 * 2 ** 20)
    try:
        class Echo:  # defined here, so sent by value: the workers cannot import this test file
            def pid(self) -> int:
                return os.getpid()

        worker = ray.remote(num_cpus=0)(Echo).remote()  # an actor, as the grid's FoldWorker is
        task = ray.remote(num_cpus=0)(lambda: os.getpid())
        pids = (ray.get(worker.pid.remote(), timeout=120), ray.get(task.remote(), timeout=120))
        yield ray, pids
    finally:
        ray.shutdown()


def descendants(pid: int) -> set[int]:
    """``pid`` and every process under it (Ray's GCS, raylet, agents and workers descend from the driver)."""
    children = {}
    for other in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{other}/stat") as f:
                children.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(other))
        except OSError:  # the process ended meanwhile
            continue
    found, todo = set(), [pid]
    while todo:
        found.add(todo[-1])
        todo.extend(children.get(todo.pop(), []))
    return found


def socket_owners(pids: set[int]) -> dict[str, int]:
    """{socket inode: pid} of the sockets that the processes ``pids`` hold open."""
    owners = {}
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    owners[target[8:-1]] = pid
        except OSError:  # the process or its descriptor ended meanwhile
            continue
    return owners


def _ip(hex_ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address in /proc/net/*: 32-bit words in the machine's byte order (little-endian here)."""
    raw = bytes.fromhex(hex_ip)
    ip = ipaddress.ip_address(b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)))
    return getattr(ip, "ipv4_mapped", None) or ip  # ::ffff:127.0.0.1 is 127.0.0.1


def process_name(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def listening(pids: set[int]) -> list[tuple[str, int, str, str, int]]:
    """(name, pid, tcp/udp, address, port) of every socket of ``pids`` that listens (TCP) or is bound (UDP)."""
    owners = socket_owners(pids)
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        with open(f"/proc/net/{table}") as f:
            rows = [line.split() for line in f.readlines()[1:]]
        for row in rows:
            local, state, inode = row[1], row[3], row[9]
            if inode in owners and (table.startswith("udp") or state == LISTEN):
                hex_ip, hex_port = local.split(":")
                pid = owners[inode]
                found.append((process_name(pid), pid, table[:3], str(_ip(hex_ip)), int(hex_port, 16)))
    return found


def test_every_process_listens_on_loopback_only(local_ray):
    ray, (actor_pid, task_worker_pid) = local_ray
    sockets = listening(descendants(os.getpid()))
    print("\n".join(f"{name} pid {pid} {proto} {ip}:{port}" for name, pid, proto, ip, port in sorted(sockets)))
    # the listing reached Ray's servers and its workers: an empty or partial one proves nothing
    assert RAY_NAMES <= {name for name, *_ in sockets}
    assert {actor_pid, task_worker_pid} <= {pid for _, pid, *_ in sockets}
    exposed = [entry for entry in sockets if not ipaddress.ip_address(entry[3]).is_loopback]
    assert not exposed, f"listening on a non-loopback address: {exposed}"
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}


def call(address: str, stub_class, method: str, request, token: str | None):
    """One gRPC call to a Ray server, with ``token`` in the header Ray's clients send (none: no header)."""
    metadata = [("authorization", f"Bearer {token}")] if token is not None else None
    with grpc.insecure_channel(address) as channel:
        return getattr(stub_class(channel), method)(request, timeout=10, metadata=metadata)


@pytest.mark.parametrize("server", ["gcs_server", "raylet"])
def test_servers_refuse_a_call_without_the_token(local_ray, server):
    ray, _ = local_ray
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc, node_manager_pb2, node_manager_pb2_grpc
    if server == "gcs_server":
        what = (ray.get_runtime_context().gcs_address, gcs_service_pb2_grpc.NodeInfoGcsServiceStub,
                "GetAllNodeInfo", gcs_service_pb2.GetAllNodeInfoRequest())
    else:
        what = (f"127.0.0.1:{ray.nodes()[0]['NodeManagerPort']}", node_manager_pb2_grpc.NodeManagerServiceStub,
                "GetSystemConfig", node_manager_pb2.GetSystemConfigRequest())
    for token in (None, "0" * 64):  # no token, a wrong one
        with pytest.raises(grpc.RpcError) as refused:
            call(*what, token)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # the grid's own token is accepted: the refusals above are the token's doing, not a broken call
    call(*what, os.environ["RAY_AUTH_TOKEN"])


def test_token_is_new_and_on_no_command_line_or_file(local_ray):
    ray, _ = local_ray
    token = os.environ["RAY_AUTH_TOKEN"]
    assert len(token) == 64 and os.environ["RAY_AUTH_MODE"] == "token"
    default_file = os.path.expanduser("~/.ray/auth_token")  # Ray's own token, shared by every Ray of the user
    if os.path.exists(default_file):
        with open(default_file) as f:
            assert f.read().strip() != token
    for pid in descendants(os.getpid()):  # command lines are readable by every user of the machine
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                assert token.encode() not in f.read(), process_name(pid)
        except OSError:
            continue
    session = ray._private.worker._global_node.get_session_dir_path()
    for folder, _, files in os.walk(session):
        for name in files:
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    assert token.encode() not in f.read(), path


def test_the_sessions_files_lie_in_a_folder_closed_to_other_users(local_ray):
    """Ray makes /tmp/ray and each session folder (logs with the per-epoch lines, sockets) writable by everyone
    (0777) and leaves them; the grid's local Ray keeps them in ray-<uid>/ray, ray-<uid> open to this user alone."""
    import stat
    import tempfile
    ray, _ = local_ray
    session = ray._private.worker._global_node.get_session_dir_path()
    closed = os.path.join(tempfile.gettempdir(), f"ray-{os.getuid()}")
    assert os.path.commonpath([session, closed]) == closed, session
    assert stat.S_IMODE(os.lstat(closed).st_mode) == 0o700 and os.lstat(closed).st_uid == os.getuid()
