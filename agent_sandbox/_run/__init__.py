"""The only side effects: the launcher and the resources it owns on one ExitStack (work dir,
placeholders and their janitor, cgroup, session record), finding bwrap, dropping a root
caller's command to an unprivileged uid, diagnosing a failed start. May import ``_plan``,
``_policy``, ``_net``, ``_seccomp`` and the base modules; never ``_cli``."""
