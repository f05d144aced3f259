"""Building the launcher's real plan and running it with bwrap directly, optionally with a
defence taken out: how the tests show that a confinement test can fail."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from agent_sandbox._plan.build import (
    GIT_EXCLUDES_FD,
    PLACEHOLDER_SOURCES,
    SECCOMP_FD,
    WORKDIR,
    Op,
    Plan,
    Section,
    build_plan,
)
from agent_sandbox._plan.host import probe_layout
from agent_sandbox._plan.view import gather_host_view
from agent_sandbox._policy.identity import current_identity
from agent_sandbox._policy.request import build_policy
from agent_sandbox._run.bwrap import find_bwrap
from agent_sandbox._run.janitor import make_dirs, make_files, remove_placeholders
from agent_sandbox._run.workdir import placeholder_sources
from agent_sandbox._seccomp.cache import seccomp_program
from agent_sandbox._seccomp.rules import Rule

Mutation = Callable[[Op], Sequence[Op]]


def plan_for(project: Path, environ: Mapping[str, str], command: Sequence[str]) -> Plan:
    """The plan the CLI would build for ``command`` run in ``project``."""
    cwd = os.getcwd()
    os.chdir(project)
    try:
        identity = current_identity(dict(environ))
        policy = build_policy(command=command, project=None, net="none", ro=[], rw=[],
                              hide=[], env=[], identity=identity)
        view = gather_host_view(identity, probe_layout(), environ, policy.project)
        return build_plan(policy, view)
    finally:
        os.chdir(cwd)


def run_plan(plan: Plan, tmp: Path, mutate: Mutation = lambda op: (op,),
             rules: tuple[Rule, ...] | None = None,
             environ: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``plan`` with bwrap, each operation passed through ``mutate`` and with ``rules``
    instead of the plan's own seccomp rules (no launcher: no start pipe, no network)."""
    sections = tuple(Section(s.title, tuple(new for op in s.ops for new in mutate(op)))
                     for s in plan.sections)
    plan = plan._replace(sections=sections, starter=(),
                         seccomp=plan.seccomp if rules is None else rules)
    workdir = tmp / "plan-workdir"
    workdir.mkdir(exist_ok=True)
    make_dirs(plan.policy.project, plan.dirs_to_make)
    made = make_files(plan.policy.project, plan.files_to_make)
    sources = placeholder_sources()
    excludes = os.memfd_create("excludes")
    os.write(excludes, plan.git_excludes.encode())
    os.lseek(excludes, 0, os.SEEK_SET)
    try:
        with seccomp_program(plan.seccomp) as fd:
            argv = plan.bwrap_args({WORKDIR: str(workdir), SECCOMP_FD: str(fd),
                                    GIT_EXCLUDES_FD: str(excludes),
                                    **{PLACEHOLDER_SOURCES[k]: v for k, v in sources.items()}})
            return subprocess.run([find_bwrap(os.environ), *argv],
                                  env=dict(plan.env if environ is None else environ),
                                  pass_fds=(fd, excludes), capture_output=True, text=True,
                                  timeout=60, check=False)
    finally:
        os.close(excludes)
        remove_placeholders(plan.policy.project, plan.placeholders, made)


def drop(flag: str) -> Mutation:
    """A mutation that removes every operation starting with ``flag``."""
    return lambda op: () if op.words[0] == flag else (op,)
