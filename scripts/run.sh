#!/usr/bin/env bash
# Set up if needed, then run agent-sandbox with these arguments in the current directory:
#   bash /path/to/agent-sandbox/scripts/run.sh -- bash
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bash "$here/scripts/setup.sh"
exec "$here/.venv/bin/agent-sandbox" "$@"
