"""``--check``: what this host can enforce, and the exact fix for what it cannot.

Also used after a failed start, to turn bwrap's terse error into a diagnosis. Not on the
launch path: imported only by ``--check`` and on failure.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from agent_sandbox import __version__
from agent_sandbox._errors import SandboxError
from agent_sandbox._plan.host import probe_layout
from agent_sandbox._policy.identity import UNPRIVILEGED_ID
from agent_sandbox._policy.limits import DEFAULT_PIDS
from agent_sandbox._run.bwrap import find_bwrap
from agent_sandbox._run.diagnose import FAIL, INFO, OK, WARN, Finding, userns_problems

# Options the default policy uses, and the bwrap release that brought them.
REQUIRED_OPTIONS = {
    "--seccomp": "0.1.3",
    "--disable-userns": "0.8.0",
    "--json-status-fd": "0.3.2",
    "--die-with-parent": "0.1.8",
    "--unshare-cgroup": "0.1.8",
    "--size": "0.7.0",
}
def _bwrap_findings() -> tuple[list[Finding], str | None]:
    try:
        bwrap = find_bwrap(os.environ)
    except SandboxError as e:
        return [Finding("bwrap", FAIL, e.message, e.fix or "")], None
    try:
        version = subprocess.run(
            [bwrap, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
        help_text = subprocess.run(
            [bwrap, "--help"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return [Finding("bwrap", FAIL, f"{bwrap} does not run: {e}")], None
    setuid = bool(os.stat(bwrap).st_mode & 0o4000)
    findings = [Finding("bwrap", OK, f"{bwrap} ({version or 'unknown version'}"
                        f"{', setuid' if setuid else ''})")]
    missing = [opt for opt in REQUIRED_OPTIONS if not re.search(rf"{opt}\b", help_text)]
    if missing:
        needed = max(REQUIRED_OPTIONS[o] for o in missing)
        findings.append(Finding(
            "bwrap options", FAIL, "missing " + ", ".join(missing),
            f"install bubblewrap >= {needed}",
        ))
    else:
        findings.append(Finding("bwrap options", OK, "all options the policy uses are present"))
    if setuid:
        findings.append(Finding(
            "bwrap mode", WARN, "setuid bwrap: tmpfs size caps (--size) are refused",
            "install a non-setuid bubblewrap and enable unprivileged user namespaces",
        ))
    return findings, bwrap


def _live_namespace_test(bwrap: str) -> Finding:
    """Really create every namespace the default policy uses, as this user."""
    uid = UNPRIVILEGED_ID if os.getuid() == 0 else os.getuid()
    argv = [
        bwrap, "--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-uts",
        "--unshare-cgroup", "--unshare-net", "--uid", str(uid), "--gid", str(uid),
        "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--die-with-parent",
        "--", "true",
    ]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return Finding("namespaces", FAIL, f"live test did not run: {e}")
    if done.returncode == 0:
        return Finding("namespaces", OK,
                       "user, mount, pid, ipc, uts, cgroup, net: live test passed")
    problems = userns_problems()
    return Finding(
        "namespaces", FAIL, f"live test failed: {done.stderr.strip() or done.returncode}",
        problems[0].fix if problems else "see the bwrap message; your kernel may lack user "
        "namespaces (CONFIG_USER_NS) or run inside a restrictive container",
    )


def _seccomp() -> list[Finding]:
    """libseccomp, and the default filter really built (or found in the cache)."""
    from agent_sandbox._seccomp.cache import cache_dir, seccomp_program
    from agent_sandbox._seccomp.compile import libseccomp_version
    from agent_sandbox._seccomp.rules import default_rules

    try:
        version = libseccomp_version()
        rules = default_rules()
        with seccomp_program(rules) as fd:
            size = os.fstat(fd).st_size
    except SandboxError as e:
        return [Finding("seccomp filter", FAIL, e.message, e.fix or "")]
    return [
        Finding("libseccomp", OK, version),
        Finding("seccomp filter", OK, f"{len(rules)} rules, {size // 8} BPF instructions, "
                f"native architecture only (cache: {cache_dir()})"),
    ]


_DEFAULT_CAPS = f"by default memory is capped at half the RAM and tasks at {DEFAULT_PIDS}"


def _cgroup() -> Finding:
    """Which way --memory/--pids/--cpus take here (``_run.cgroup.cgroup_way``), or why none."""
    from agent_sandbox._run.cgroup import cgroup_way, hierarchy, how_to_cap, parse_mountinfo

    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            mode = hierarchy(parse_mountinfo(f.read()))
    except OSError:
        mode = "unknown"
    way = cgroup_way(os.environ)
    if way.parent:
        return Finding("cgroup v2", OK, f"{mode}; limits: a cgroup in the delegated "
                       f"{way.parent}; {_DEFAULT_CAPS}")
    if way.systemd_run:
        return Finding("cgroup v2", OK, f"{mode}; limits: a systemd-run --user scope; "
                       f"{_DEFAULT_CAPS}")
    return Finding("cgroup v2", INFO, f"{mode}; memory/pids/cpu limits are unavailable here "
                   f"(and memory is not capped by default): {way.why_not}",
                   how_to_cap(way.why_not))


def root_caller(path: str) -> Finding:
    """What a root caller's command gets here: an unprivileged host uid with ``path`` (the
    project) idmapped to it, tried for real, or the refusal and its fix."""
    from agent_sandbox._policy.identity import ROOT_COMMAND_UID
    from agent_sandbox._run.idmap import check_command_uid, probe

    if os.getuid() != 0:
        return Finding("root caller", INFO, f"(you are not root) a root caller's command runs "
                       f"as host uid {ROOT_COMMAND_UID}, its writable paths idmapped; under "
                       "sudo, as the user who typed it")
    try:
        check_command_uid()
    except SandboxError as e:
        return Finding("root caller", FAIL, e.message, e.fix or "")
    problem = probe(path)
    if problem:
        return Finding("root caller", FAIL, f"the command cannot run as host uid "
                       f"{ROOT_COMMAND_UID} here: {problem}",
                       "run agent-sandbox as an ordinary user, or pass --root-stays-root "
                       "(the command keeps host uid 0; weaker)")
    return Finding("root caller", OK, f"the command runs as host uid {ROOT_COMMAND_UID}, "
                   f"not 0; idmapped mounts work for {path}")


# Current nixpkgs aborts evaluation on older Nix (lib/minver.nix).
NIXPKGS_MIN_NIX = (2, 18)


def nix_version() -> Finding | None:
    """With the flake's packages or shells in use (agent-sandbox from the Nix store, or in a
    ``nix develop`` shell): whether this Nix can evaluate current nixpkgs at all."""
    import agent_sandbox

    if not (agent_sandbox.__file__.startswith("/nix/store/") or os.environ.get("IN_NIX_SHELL")):
        return None
    try:
        out = subprocess.run(["nix", "--version"], capture_output=True, text=True, timeout=10,
                             check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return Finding("nix", INFO, "no nix on PATH")
    found = re.search(r"(\d+)\.(\d+)(?:\.\d+)?", out)
    if found is None:
        return Finding("nix", INFO, f"unknown version: {out.strip()!r}")
    version = (int(found.group(1)), int(found.group(2)))
    need = ".".join(map(str, NIXPKGS_MIN_NIX))
    if version < NIXPKGS_MIN_NIX:
        return Finding("nix", WARN, f"nix {found.group(0)} is too old for current nixpkgs "
                       f"(>= {need}): the flake's packages and shells will not evaluate "
                       "with it; docs/nix.md says how to get a current Nix")
    return Finding("nix", OK, f"nix {found.group(0)} (nixpkgs needs >= {need})")


def collect() -> list[Finding]:
    findings: list[Finding] = []
    bwrap_findings, bwrap = _bwrap_findings()
    findings += bwrap_findings
    problems = userns_problems()
    if bwrap is not None:
        findings.append(_live_namespace_test(bwrap))
    findings += problems
    if not problems:
        findings.append(Finding("AppArmor", OK, "no user namespace restriction"))
    findings += _seccomp()
    layout = probe_layout()
    findings.append(Finding(
        "layout", OK,
        f"{layout.kind.value}{', merged /usr' if layout.merged_usr else ''}: "
        f"read-only {', '.join(layout.ro_dirs)}",
    ))
    findings.append(Finding("kernel", INFO, os.uname().release))
    findings.append(_cgroup())
    findings.append(root_caller(os.getcwd()))
    nix = nix_version()
    if nix is not None:
        findings.append(nix)
    return findings


def report(as_json: bool) -> int:
    """Print the report; exit 0 only if the default policy can be enforced here."""
    findings = collect()
    ok = not any(f.status == FAIL for f in findings)
    if as_json:
        print(json.dumps({"version": __version__, "ok": ok,
                          "checks": [f._asdict() for f in findings]}, indent=2))
        return 0 if ok else 1
    width = max(len(f.name) for f in findings)
    colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    marks = {OK: "32", WARN: "33", FAIL: "31", INFO: "36"}
    print(f"agent-sandbox {__version__}: host check")
    for f in findings:
        status = f"{f.status:<4}"
        if colour:
            status = f"\033[{marks[f.status]}m{status}\033[0m"
        print(f"  {status}  {f.name:<{width}}  {f.detail}")
        if f.fix and f.status in (FAIL, WARN):
            print(f"        {'':<{width}}  fix: {f.fix}")
    print("verdict: " + ("the default policy can be enforced here" if ok else
                         "the default policy can NOT be enforced here; agent-sandbox will refuse "
                         "to run until the failures above are fixed"))
    return 0 if ok else 1
