"""What keeps a local Ray closed to the network: loopback addresses only, and a token of its own.

Measured on Ray 2.60 (docs/grid.md, tests/test_grid_network.py):

- Every server of a Ray node (GCS, raylet and its object manager, the driver's and every worker's gRPC server,
  the runtime-env agent) listens on the node's IP address when that is the loopback address, and on every
  interface otherwise. ``ray.init(_node_ip_address="127.0.0.1")`` alone does not make it so:
  ``services.resolve_ip_for_localhost`` swaps a loopback address for the machine's network address unless
  ``ray_constants.ENABLE_RAY_CLUSTER`` is false, and that constant is read from
  ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` once, when Ray is first imported (by anyone, before the grid).
- A new local Ray turns token authentication on by itself, with a token kept in ``~/.ray/auth_token``, one file
  for every Ray of the user, written with the default umask (0644 here). Ray reads ``RAY_AUTH_TOKEN`` before
  that file, so a token in the environment is one of this Ray's own, on no disk.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

LOOPBACK = "127.0.0.1"


def use_new_token() -> None:
    """Token authentication with a new random token (256 bits) for the Ray about to start in this process.

    The token lives in this process's environment, inherited by the Ray processes it starts (readable by this
    user and root only, in /proc/PID/environ), and is never printed or written to a file. Ray caches its
    configuration and the token it read: both are read again here, for a Ray imported before or a second grid.
    """
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    from ray._raylet import AuthenticationTokenLoader, Config
    Config.initialize("")  # the mode: RayConfig reads RAY_AUTH_MODE when initialized
    AuthenticationTokenLoader.instance().reset_cache()


@contextlib.contextmanager
def loopback_node() -> Iterator[None]:
    """Within: a Ray started here keeps ``_node_ip_address="127.0.0.1"`` as its node address (see above).

    Ray's constant is restored after: once the node has started, Ray takes the node's address from it, and the
    rest of this process (a later ``ray.init`` that joins a cluster) sees the constant as Ray set it.
    """
    from ray._private import ray_constants
    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved
