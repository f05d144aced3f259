"""Pure planning: what the host looks like (layout probe, the host view gathered once per
launch, the protected files found in the project) and the bwrap plan built from a policy
and that view. Reads the filesystem, never writes. May import ``_policy``, ``_net``,
``_seccomp`` and the base modules."""
