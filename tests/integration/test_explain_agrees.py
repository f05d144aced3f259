"""What `agent-sandbox explain` says about a path is what the real sandbox, launched with the
same flags, does with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Env, run_cli

pytestmark = pytest.mark.integration

# What the command can do with each path inside, by the state explain gives it.
EXPECTED = {"read-write": "rw", "read-only": "ro", "hidden": "absent", "masked": "unreadable"}
PROBE = """for p; do
  if [ ! -e "$p" ]; then echo absent
  elif ! { [ -d "$p" ] && ls "$p" || cat "$p"; } >/dev/null 2>&1; then echo unreadable
  elif [ -w "$p" ]; then echo rw
  else echo ro; fi
done"""


def test_explain_agrees_with_the_sandbox(project: Path, env: Env, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "scratch").mkdir(parents=True)
    (data / "f").write_text("x\n")
    (data / "scratch" / "g").write_text("x\n")
    (project / "main.py").write_text("print(1)\n")
    (project / "secrets").mkdir()
    (project / "secrets" / "key").write_text("x\n")
    elsewhere = env.tmpdir / "not-in-the-sandbox"  # the host's /tmp: private inside
    elsewhere.write_text("x\n")
    flags = ["--ro", str(data), "--rw", str(data / "scratch"), "--hide", "secrets"]
    paths = [project / "main.py", project / "secrets", data / "f", data / "scratch" / "g",
             env.home / ".ssh" / "id_ed25519", env.home / ".bashrc", Path("/usr/bin/env"),
             elsewhere]
    said = []
    for path in paths:
        done = run_cli(["explain", str(path), *flags], cwd=project, env=env.vars)
        assert done.returncode == 0, done.stderr
        said.append(EXPECTED[done.stdout.split("\n", 1)[0].split(": ", 1)[1].split(" ")[0]])
    assert said == ["rw", "unreadable", "ro", "rw", "absent", "absent", "ro", "absent"]
    done = run_cli([*flags, "--", "sh", "-c", PROBE, "probe", *map(str, paths)],
                   cwd=project, env=env.vars)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == said
