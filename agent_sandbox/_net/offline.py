"""Whether a command under ``--net none`` tried to reach the network, from its namespace's
own kernel counters: a packet with no route (a connection or a DNS query to any address
outside; the sandbox has only ``lo``), or a UDP datagram to a loopback port nobody
listens on (a query to a host-local DNS stub such as systemd-resolved's 127.0.0.53, which
the sandbox's copy of ``/etc/resolv.conf`` may name).

Tools print only "Could not resolve host" or "Temporary failure in name resolution"; the
launcher, which knows the network was off, says so at exit. The counter files are opened
while the sandbox runs: an open one keeps its namespace's counters readable after the
sandbox's last process is gone. Two opens per launch, and two reads at a failed exit.
"""

from __future__ import annotations

import contextlib
import os

# (file, table prefix, counter): each counts the command's attempts to leave.
_COUNTERS = (("snmp", "Ip:", "OutNoRoutes"), ("snmp", "Udp:", "NoPorts"),
             ("snmp6", "", "Ip6OutNoRoutes"), ("snmp6", "", "Udp6NoPorts"))


def _value(text: str, table: str, counter: str) -> int:
    """``counter`` from /proc/net/snmp (a header line, then a values line, per table) or
    /proc/net/snmp6 (``Name value`` lines, ``table`` empty); 0 if absent."""
    lines = text.splitlines()
    if not table:
        for line in lines:
            name, _, value = line.partition(" ")
            if name == counter:
                return int(value.strip() or 0)
        return 0
    rows = [line.split()[1:] for line in lines if line.startswith(table)]
    for names, values in zip(rows[::2], rows[1::2], strict=False):
        if counter in names:
            return int(values[names.index(counter)])
    return 0


class Attempts:
    """The counters of the namespace of ``init_pid``, held open until ``close``."""

    def __init__(self, init_pid: int) -> None:
        self._fds: dict[str, int] = {}
        for name in ("snmp", "snmp6"):
            with contextlib.suppress(OSError):  # no IPv6: its counters are absent
                self._fds[name] = os.open(f"/proc/{init_pid}/net/{name}",
                                          os.O_RDONLY | os.O_CLOEXEC)

    def count(self) -> int:
        """How many times the command tried to reach the network, so far."""
        texts = {}
        for name, fd in self._fds.items():
            chunks = []
            with contextlib.suppress(OSError):
                os.lseek(fd, 0, os.SEEK_SET)
                while chunk := os.read(fd, 65536):
                    chunks.append(chunk)
            texts[name] = b"".join(chunks).decode("ascii", "replace")
        return sum(_value(texts.get(name, ""), table, counter)
                   for name, table, counter in _COUNTERS)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
