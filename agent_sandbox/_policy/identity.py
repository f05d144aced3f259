"""Who is calling, and who the command is: the caller's uid, gid, name and home."""

from __future__ import annotations

import os
import posixpath
from typing import NamedTuple

# Inside uid/gid for a root caller: the command never runs as uid 0 inside.
UNPRIVILEGED_ID = 65534
# ... nor as host uid 0: a root caller's command runs as this host uid (and gid), with the
# paths it writes idmapped to it (``_idmap``), unless --root-stays-root. Outside every range
# that system users, useradd (1000-60000), systemd's dynamic users and homed (60001-65519),
# nobody (65534), subordinate ids (useradd: 100000-600100000) and systemd-nspawn's
# containers (up to 1879048191) take, and below 2^31 for tools that keep ids signed.
ROOT_COMMAND_UID = 2_000_000_000


class Identity(NamedTuple):
    """The caller, and who the command is inside."""

    uid: int
    gid: int
    user: str
    home: str

    @property
    def inside_uid(self) -> int:
        return UNPRIVILEGED_ID if self.uid == 0 else self.uid

    @property
    def inside_gid(self) -> int:
        return UNPRIVILEGED_ID if self.uid == 0 else self.gid


def current_identity(environ: dict[str, str] | None = None) -> Identity:
    """The calling user; ``$HOME`` wins over the password database, as shells do."""
    env = os.environ if environ is None else environ
    uid, gid = os.getuid(), os.getgid()
    home = env.get("HOME", "")
    user = env.get("USER", "")
    if not home.startswith("/") or not user:
        import pwd

        try:
            entry = pwd.getpwuid(uid)
        except KeyError:
            entry = None
        if not home.startswith("/"):
            home = entry.pw_dir if entry else "/"
        if not user:
            user = entry.pw_name if entry else str(uid)
    return Identity(uid=uid, gid=gid, user=user, home=posixpath.normpath(home))
