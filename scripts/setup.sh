#!/usr/bin/env bash
# Set up agent-sandbox from this checkout: system packages (Debian/Ubuntu, via sudo when not
# root), a venv in .venv, the package. Idempotent and quiet when done.
#   bash scripts/setup.sh          what running needs (scripts/run.sh calls this)
#   bash scripts/setup.sh --test   and what the test suite needs (scripts/test.sh calls this)
set -euo pipefail
cd "$(dirname "$0")/.."

test_tools=false
[ "${1:-}" = "--test" ] && test_tools=true

# bubblewrap: the sandbox; libseccomp2: the seccomp layer; python3-venv: the venv; dtach:
# detached sessions (--detach, attach).
packages=(bubblewrap libseccomp2 python3 python3-venv dtach)
# For the tests: git, vim-tiny, util-linux (ipcmk, unshare), curl, nodejs, openssl: used by
# the tests inside the sandbox; nix-bin: the flake's offline tests (tests/nix); zsh, fish:
# the completion tests; direnv: the host tool the protection tests run after a session.
if $test_tools; then
  packages+=(git vim-tiny util-linux curl nodejs openssl nix-bin zsh fish direnv)
fi

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
elif ! command -v bwrap >/dev/null 2>&1; then
  echo "setup: not a Debian/Ubuntu system: install bubblewrap (>= 0.8), libseccomp and" \
       "Python >= 3.11 with your package manager, then run this again" >&2
  exit 1
fi

python=""
for candidate in /usr/bin/python3 python3; do
  if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    python="$candidate"
    break
  fi
done
[ -n "$python" ] || { echo "setup: Python >= 3.11 is required" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
target=.
stamp=.venv/.agent-sandbox-installed
if $test_tools; then
  target=".[test]"
  stamp=.venv/.agent-sandbox-test-installed
fi
if [ ! -e "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  # compat: a plain .pth entry for the checkout; the default editable mode installs an
  # import finder that every Python start in the venv loads (~13 ms, pathlib and friends),
  # which would skew bench/bench_launch.py's python -c pass baseline.
  .venv/bin/python -m pip install -q --disable-pip-version-check -e "$target" \
    --config-settings editable_mode=compat
  touch "$stamp"
fi
