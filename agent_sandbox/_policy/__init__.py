"""What the user asked for, as validated values: the request (flags to a ``Policy``), the
configuration layers, agent presets, the caller's identity, the environment allow-list,
limits and the protected names. Pure but for reading config files. May import ``_net`` (to
parse allow rules), ``_seccomp`` and the base modules."""
