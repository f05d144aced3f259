"""``python -m agent_sandbox``: the same entry point as the ``agent-sandbox`` script."""

from agent_sandbox._cli.main import main

raise SystemExit(main())
