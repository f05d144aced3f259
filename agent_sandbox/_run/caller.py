"""Who the launcher runs as: under sudo, the user who typed it, before anything is read.

``sudo agent-sandbox ...`` sets SUDO_UID and SUDO_GID to the invoking user. The launcher
becomes that user (their groups, their ``$HOME``, so their config, state and agent homes)
before it reads any configuration, and from then on works exactly as for that user: the
command runs with their uid, never host root. A real root caller (no sudo) is handled by
the plan and ``_idmap`` instead.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

from agent_sandbox._errors import SandboxUnavailable

# Root's own per-user places, which mean nothing (or the wrong thing) for the user.
_ROOTS_PLACES = ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME",
                 "XDG_RUNTIME_DIR", "MAIL")


def drop_sudo(environ: MutableMapping[str, str]) -> str:
    """As root under sudo, become the invoking user and adjust ``environ``; return that
    user's name ("" when nothing was done)."""
    import pwd

    raw = environ.get("SUDO_UID", "")
    if os.geteuid() != 0 or not raw.isdigit() or int(raw) == 0:
        return ""
    try:
        user = pwd.getpwuid(int(raw))
    except KeyError:
        return ""  # not a real user: handled as the real root it is
    raw_gid = environ.get("SUDO_GID", "")
    gid = int(raw_gid) if raw_gid.isdigit() else user.pw_gid
    try:
        os.initgroups(user.pw_name, gid)
        os.setresgid(gid, gid, gid)
        os.setresuid(user.pw_uid, user.pw_uid, user.pw_uid)
    except OSError as e:
        raise SandboxUnavailable(f"cannot become {user.pw_name} (SUDO_UID {raw}): {e.strerror}",
                                 fix=f"run it as {user.pw_name} without sudo") from None
    for name in _ROOTS_PLACES:
        environ.pop(name, None)
    environ.update(HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name)
    runtime = f"/run/user/{user.pw_uid}"
    if os.path.isdir(runtime) and os.stat(runtime).st_uid == user.pw_uid:
        environ["XDG_RUNTIME_DIR"] = runtime
    return user.pw_name
