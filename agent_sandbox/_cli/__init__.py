"""The command line's face: the main launch (``main``), its grammar (``parser``), the
session commands, ``explain``, the ``--check`` report, the Nix dev shells' front and the
generated docs. May import every layer below: ``_run``, ``_plan``, ``_policy``, ``_net``,
``_seccomp`` and the base modules (``_errors``, ``_say``)."""
