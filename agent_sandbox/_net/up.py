"""Bringing a sandbox's network up: sockets made inside its namespace, served from outside.

Called by the launcher after bwrap reported the sandbox's pid and before it lets the command
run (``--block-fd``), so the command never sees a network that is not served yet.
"""

from __future__ import annotations

import contextlib
import resource
import socket
from collections.abc import Iterator

from agent_sandbox._errors import SandboxUnavailable
from agent_sandbox._net.fixes import GroupOf
from agent_sandbox._net.log import DecisionLog
from agent_sandbox._net.netns import SocketSpec, namespace_sockets
from agent_sandbox._net.plan import DNS_ADDRESS, PROXY_ADDRESS, NetPlan, transparent_ports
from agent_sandbox._net.proxy import Listeners, Network, serving


def _raise_fd_limit() -> None:
    # Each connection holds two fds in the launcher (client and upstream): the default soft
    # limit of 1024 would cap the sandbox at ~500 connections.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


@contextlib.contextmanager
def network(plan: NetPlan, init_pid: int, log: DecisionLog,
            group_of: GroupOf | None = None) -> Iterator[Network]:
    _raise_fd_limit()
    with contextlib.ExitStack() as stack:
        inside = stack.enter_context(namespace_sockets(init_pid))
        ports = transparent_ports(plan.entries) if plan.filtered else ()
        specs = [SocketSpec("tcp", PROXY_ADDRESS), SocketSpec("udp", DNS_ADDRESS)]
        specs = specs if plan.filtered else []
        # Transparent listeners take every loopback address ("0.0.0.0" in a namespace whose
        # only interface is lo): the destination address tells which name was resolved.
        specs += [SocketSpec("tcp", ("0.0.0.0", port)) for port in ports]
        specs += [SocketSpec("tcp", ("127.0.0.1", f.inside_port)) for f in plan.forwards]
        try:
            made = inside.make(specs) if specs else []
        except OSError as e:
            raise SandboxUnavailable(f"cannot create the sandbox's network sockets: {e}",
                                     fix="is another --forward-host using that port twice?"
                                     ) from None
        for sock in made:
            stack.callback(sock.close)
        rest = made[2:] if plan.filtered else made
        listeners = Listeners(
            proxy=made[0] if plan.filtered else None,
            dns=made[1] if plan.filtered else None,
            transparent=tuple(zip(ports, rest[:len(ports)], strict=True)),
            forwards=tuple(zip(plan.forwards, rest[len(ports):], strict=True)),
        )

        def dial_socket(address: str) -> socket.socket:
            """An unbound socket made inside, of ``address``'s family."""
            return inside.make([SocketSpec("tcp", (address, 0), bind=False)])[0]

        net = Network(plan.entries, plan.pins, log, group_of)
        stack.enter_context(serving(net, listeners, plan.publish, dial_socket))
        yield net
