"""An agent's login: which of its files cross between projects, and when a token has
expired. Pure: bytes in, bytes or answers out (``_run.agent_home`` moves the files)."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from agent_sandbox._policy.presets import Preset

_EXPIRY_KEYS = ("expiresAt", "expires_at", "expiry_date", "expiry", "expires")


def expired(data: bytes, now: float | None = None) -> bool:
    """Whether a login file says its token has expired (an ``expiresAt``-like field, in
    seconds or milliseconds since the epoch, or ISO 8601); no such field: not expired."""
    now = time.time() if now is None else now
    try:
        value: Any = json.loads(data)
    except ValueError:
        return False
    found: list[float] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, v in item.items():
                if key in _EXPIRY_KEYS:
                    moment = _moment(v)
                    if moment is not None:
                        found.append(moment)
                elif isinstance(v, dict | list):
                    stack.append(v)
        elif isinstance(item, list):
            stack.extend(item)
    return bool(found) and max(found) < now


def _moment(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value / 1000 if value > 1e11 else float(value)
    if isinstance(value, str):
        from datetime import datetime

        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None


def valid_login(rel: str, data: bytes | None) -> bool:
    if not data:
        return False
    if rel.endswith(".json"):
        try:
            return isinstance(json.loads(data), dict)
        except ValueError:
            return False
    return True


def kept(data: bytes | None, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """The login keys of a seed_json file (None if it is not a JSON object)."""
    try:
        value = json.loads(data) if data else None
    except ValueError:
        return None
    return {k: value[k] for k in keys if k in value} if isinstance(value, dict) else None




def login_part(preset: Preset, rel: str, data: bytes | None) -> bytes | None:
    """What of a login file is shared: a seed file whole (if valid), a seed_json file's
    listed keys."""
    keys = dict(preset.seed_json).get(rel)
    if keys is not None:
        found = kept(data, keys)
        return json.dumps(found).encode() if found else None
    return data if valid_login(rel, data) else None
