#!/usr/bin/env bash
# The whole test suite: lint, types, then unit, CLI and real-sandbox integration tests.
# Extra arguments go to pytest (e.g. -m "not integration" where bwrap cannot run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
.venv/bin/ruff check agent_sandbox tests bench
.venv/bin/mypy agent_sandbox bench
.venv/bin/python -m pytest -q "$@"
