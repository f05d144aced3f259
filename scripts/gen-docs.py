#!/usr/bin/env python3
"""Regenerate the files rendered from the CLI and configuration definitions
(``agent_sandbox._cli.docgen.GENERATED``: the man page, the configuration reference).

    .venv/bin/python scripts/gen-docs.py          # rewrite the files that changed
    .venv/bin/python scripts/gen-docs.py --check  # exit 1, naming them, if any is stale

tests/unit/test_docgen.py runs the same comparison, so a stale file fails the test suite.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's package, whichever Python runs the script

from agent_sandbox._cli.docgen import GENERATED  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true",
                   help="change nothing; exit 1 if a generated file is stale")
    args = p.parse_args()
    stale = []
    for relative, render in GENERATED.items():
        path = ROOT / relative
        text = render()
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(relative)
        if not args.check:
            path.write_text(text, encoding="utf-8")
    verb = "stale (run scripts/gen-docs.py)" if args.check else "written"
    for relative in stale:
        print(f"{relative}: {verb}", file=sys.stderr)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
