"""Policy + host view -> Plan: the exact bwrap operations, environment and command. Pure.

Nothing here touches the OS, so the whole plan is unit-tested with golden files. The one value
only known at launch, the host work dir bound at /tmp, is a placeholder (``WORKDIR``) that the
launcher fills in when it renders the argv.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple

from agent_sandbox._errors import UsageError
from agent_sandbox._net.plan import PROXY_VARIABLES, NetPlan, proxy_environment
from agent_sandbox._plan.host import HostLayout
from agent_sandbox._plan.protect import Protection, created_parents
from agent_sandbox._policy.env import build_env, sanitise_path
from agent_sandbox._policy.identity import ROOT_COMMAND_UID, Identity
from agent_sandbox._policy.limits import systemd_scope_argv
from agent_sandbox._policy.values import Mount, MountMode, NetMode, Policy, is_under
from agent_sandbox._seccomp.rules import Rule, default_rules

SANDBOX_HOSTNAME = "agent-sandbox"


class Placeholder:
    """A value only the launcher knows: filled in when it renders the argv."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"${self.name}"


WORKDIR = Placeholder("WORKDIR")  # the host side of /tmp
SECCOMP_FD = Placeholder("SECCOMP_FD")  # the fd holding the compiled filter
STARTED_FD = Placeholder("STARTED_FD")  # the write end of the "command started" pipe
BLOCK_FD = Placeholder("BLOCK_FD")  # bwrap waits on it until the network is served
HOSTS_FD = Placeholder("HOSTS_FD")  # the sandbox's /etc/hosts
RESOLV_FD = Placeholder("RESOLV_FD")  # the sandbox's /etc/resolv.conf
# Placeholder sources, by kind (see _workdir.PLACEHOLDER_SOURCES): read-only, made once.
PLACEHOLDER_SOURCES = {kind: Placeholder(f"PLACEHOLDER_{kind.upper()}")
                       for kind in ("dir", "file", "json", "mcp", "commondir")}
GIT_EXCLUDES_FD = Placeholder("GIT_EXCLUDES_FD")  # git ignore patterns for the placeholders
GIT_COPIES = Placeholder("GIT_COPIES")  # the writable copies of git configs (_run.gitcopy)
GIT_COPIES_INSIDE = "/run/agent-sandbox/git"
# Made by the last operation of every plan: once the launcher sees it through the sandbox's
# /proc/PID/root, bwrap has made everything and is about to wait on the block pipe.
READY = "/run/agent-sandbox/ready"
GIT_EXCLUDES = "/run/agent-sandbox/git-excludes"
GIT_TOKEN = "/run/agent-sandbox/git-token"
GIT_TOKEN_HELPER = ('!f() { test "$1" = get || exit 0; echo username=x-access-token; '
                    f'printf password=; cat {GIT_TOKEN}; }}; f')

# Run first inside, after bwrap's whole setup (mounts, seccomp): report "started" with one
# byte on the pipe, close it, exec the rest. bwrap exits 1 both for its own setup errors
# (which happen after it reports the child's pid: an AppArmor-blocked uid map, a filter the
# kernel rejects, a bad mount) and for a command's `exit 1`; this byte tells them apart.
STARTER_SCRIPT = 'printf . >&"$1" && eval "exec $1>&-" && shift && exec "$@"'
Word = str | Placeholder


class Op(NamedTuple):
    """One bwrap option with its arguments, and why the plan has it."""

    words: tuple[Word, ...]
    why: str = ""
    # "copies": only when the git config copies' links are mounted (``_run.mountns``);
    # "no-copies": only when they cannot be; "": always.
    when: str = ""

    @property
    def dest(self) -> str | None:
        """The path inside this operation makes (a mount point, directory or file)."""
        words = self.words
        while words and words[0] in _MODIFIERS:
            words = words[2:]
        if words and words[0] in _WITH_SOURCE and len(words) == 3:
            return words[2] if isinstance(words[2], str) else None
        if words and words[0] in _DEST_ONLY and len(words) == 2:
            return words[1] if isinstance(words[1], str) else None
        return None

    def text(self) -> str:
        """The option and its arguments, shell-quoted (placeholders as ``$NAME``)."""
        return " ".join(_quote(w) for w in self.words)


class Section(NamedTuple):
    title: str
    ops: tuple[Op, ...]


class HostView(NamedTuple):
    """What the plan needs to know about the host, gathered once by the caller."""

    identity: Identity
    layout: HostLayout
    environ: tuple[tuple[str, str], ...]
    # PATH entries as (written, resolved on the host).
    path_entries: tuple[tuple[str, str], ...]
    # The user's git identity files as (path inside, real path on the host).
    git_configs: tuple[tuple[str, str], ...]
    # The files (or directories) the CA variables name, as (path inside, real path on the
    # host): those that exist.
    ca_files: tuple[tuple[str, str], ...] = ()
    # The secrets under $HOME that exist (keys, tokens, logins, agent homes; the list in
    # ``_plan.install.HOME_SECRETS`` and agent-sandbox's data and state), as (path, is a
    # directory): hidden under a broader --ro/--rw.
    home_secrets: tuple[tuple[str, bool], ...] = ()
    # agent-sandbox's user configuration directory, if it exists.
    config_dir: str = ""
    # An ``env`` inside that can reset signal dispositions (GNU coreutils >= 8.31), or "".
    signal_reset_env: str = ""
    # A POSIX shell inside for the start reporter (STARTER_SCRIPT), or "".
    start_shell: str = ""
    # Host-executed files in the project to make read-only (see _protect).
    protections: tuple[Protection, ...] = ()
    # /dev/dri, /dev/nvidia* as they exist on this host (used with --gpu).
    gpu_devices: tuple[str, ...] = ()
    # Which of PROC_READ_ONLY and PROC_MASKED exist on this kernel, as (path, is a
    # directory): bwrap cannot bind over what the fresh /proc does not have.
    proc_entries: tuple[tuple[str, bool], ...] = ()
    # The user's global git excludes (core.excludesFile, else ~/.config/git/ignore): the
    # file is in the hidden home, so its patterns are given to git inside with ours.
    git_ignore: str = ""
    # info/exclude files of the project's repositories and the placeholder patterns each
    # gets while the sandbox runs (``_plan.protect.host_excludes``).
    host_excludes: tuple[tuple[str, tuple[str, ...]], ...] = ()


class Plan(NamedTuple):
    policy: Policy
    sections: tuple[Section, ...]
    env: tuple[tuple[str, str], ...]
    # Names whose value came from the host environment (never printed by --dry-run).
    host_valued: frozenset[str]
    # The seccomp rules the launcher compiles (or finds cached) and passes as SECCOMP_FD.
    seccomp: tuple[Rule, ...] = ()
    # The "started" reporter (see STARTER_SCRIPT), or empty when no shell is visible inside.
    starter: tuple[Word, ...] = ()
    # Empty, or an env that undoes the launcher's SIG_IGN of the terminal's SIGINT/SIGQUIT
    # (see ``shield_terminal_signals``).
    shield: tuple[str, ...] = ()
    # The network the launcher serves (filtered mode, forwards, published ports), if any.
    net: NetPlan | None = None
    # Run before bwrap: systemd-run making a limited cgroup scope, or nothing.
    bwrap_prefix: tuple[str, ...] = ()
    # What is made in the project for protected placeholders (deepest first): by the
    # launcher (the directories on the way, which are pinned, and the files, with their
    # placeholders' content) or by bwrap (the directories). Removed after the sandbox, even
    # if the launcher is killed.
    placeholders: tuple[str, ...] = ()
    protections: tuple[Protection, ...] = ()
    # The patterns git inside ignores (the user's global ones, then the placeholders'),
    # given at GIT_EXCLUDES; "" when there are none.
    git_excludes: str = ""
    # Host git's info/exclude blocks for the placeholders, while the sandbox runs.
    host_excludes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # A root caller's command runs as this host uid (None: the caller's own uid), and every
    # host path in ``staged_sources`` reaches bwrap as an idmapped clone (see _idmap).
    command_uid: int | None = None
    staged_sources: tuple[Word, ...] = ()

    @property
    def files_to_make(self) -> tuple[tuple[str, bytes], ...]:
        """The missing protected files, each with its placeholder's content: their mount
        points hold what the sandbox shows, so host tools reading them meanwhile (git reads
        .git/commondir, editors read .vscode/settings.json) see a valid file, not an empty
        one."""
        from agent_sandbox._plan.protect import PLACEHOLDER_SOURCES as CONTENTS

        return tuple((p.path, CONTENTS[p.kind][1] or b"") for p in self.protections
                     if p.mode == "placeholder" and p.kind != "dir")

    @property
    def dirs_to_make(self) -> tuple[str, ...]:
        """The missing directories the launcher makes before bwrap pins them (parents
        first)."""
        made = set(self.placeholders)
        return tuple(p.path for p in self.protections if p.mode == "pin" and p.path in made)

    @property
    def command(self) -> tuple[str, ...]:
        return self.policy.command

    @property
    def shield_terminal_signals(self) -> bool:
        """Whether bwrap should start with SIGINT and SIGQUIT ignored.

        The terminal sends ^C to its whole foreground process group, bwrap's own monitor
        process included, which would die of it and take the sandbox along: a program inside
        that handles ^C (a REPL, aider interrupting a reply) would be killed instead. bwrap
        starts with the two signals ignored, and ``env --default-signal`` restores them to
        default just before the command runs, so the command sees ^C exactly as outside.
        """
        return bool(self.shield)

    @property
    def reports_start(self) -> bool:
        return bool(self.starter)

    @property
    def config_copies(self) -> tuple[str, ...]:
        """The git configs writable inside as copies (``_run.gitcopy``), in order."""
        return tuple(p.path for p in self.protections if p.mode == "copy")

    def temporary_home(self) -> str | None:
        """$HOME inside when it is the empty tmpfs the sandbox made (not an agent preset's
        home, and not covered by a later bind: the project at $HOME, a --ro or --rw of it
        or a directory above it), else None."""
        if self.policy.agent_home:
            return None
        home = dict(self.env).get("HOME", "")
        last = None
        for section in self.sections:
            for op in section.ops:
                if op.dest and is_under(home, op.dest):
                    last = op
        return home if last is not None and last.words[-2:] == ("--tmpfs", home) else None

    def made_paths(self) -> frozenset[str]:
        """Every path inside bwrap makes (and the directories on their way): what the
        sandbox's own filesystems hold before the command writes anything."""
        made = set()
        for section in self.sections:
            for op in section.ops:
                path = op.dest
                while path and path != "/" and path not in made:
                    made.add(path)
                    path = os.path.dirname(path)
        return frozenset(made)

    def bwrap_args(self, values: Mapping[Placeholder, str],
                   renamed: Mapping[str, str] | None = None,
                   copies: bool = False) -> list[str]:
        """The bwrap options and command, with the launcher's values filled in, and each
        bind source in ``renamed`` (the staged sources of a root caller) under its new
        name; ``copies``: the git config copies' links are mounted."""
        args: list[str] = []
        for section in self.sections:
            for op in section.ops:
                if op.when and (op.when == "copies") != copies:
                    continue
                words = [values[w] if isinstance(w, Placeholder) else w for w in op.words]
                if renamed and words[0] in _BINDS and words[1] in renamed:
                    words[1] = renamed[words[1]]
                args.extend(words)
        args.append("--")
        args.extend(values[w] if isinstance(w, Placeholder) else w for w in self.starter)
        args.extend(self.shield)
        args.extend(self.command)
        return args

    def describe(self) -> str:
        """A grouped, shell-quoted rendering for ``--dry-run``."""
        import shlex  # only --dry-run needs it

        lines = []
        for section in self.sections:
            lines.append(f"# {section.title}")
            for op in section.ops:
                why = op.why + _WHEN.get(op.when, "")
                lines.append(f"  {op.text()}" + (f"    # {why}" if why else ""))
        lines.append("# command")
        lines.append("  --")
        if self.starter:
            lines.append("  " + " ".join(_quote(w) for w in self.starter)
                         + "    # tells the launcher the sandbox is set up")
        if self.shield:
            lines.append("  " + shlex.join(self.shield)
                         + "    # ^C reaches the command, not bwrap")
        lines.append("  " + shlex.join(self.command))
        if self.command_uid is not None:
            lines.append(f"# bwrap runs as host uid {self.command_uid} (called as root); it "
                         "binds these as idmapped clones of theirs, owner shown as that uid:")
            lines += [f"  {_quote(w)}" for w in self.staged_sources]
        lines.append("# environment (nothing else is passed in)")
        for name, value in self.env:
            shown = "<from host>" if name in self.host_valued else shlex.quote(value)
            lines.append(f"  {name}={shown}")
        return "\n".join(lines) + "\n"


_BINDS = ("--bind", "--ro-bind")
_MODIFIERS = ("--perms", "--size")
_WITH_SOURCE = ("--bind", "--ro-bind", "--dev-bind", "--symlink", "--ro-bind-data",
                "--bind-data", "--file")
_DEST_ONLY = ("--tmpfs", "--dir", "--proc", "--dev")  # not --remount-ro: it makes nothing


_WHEN = {"copies": "",
         "no-copies": " (only where its writable copy cannot be made: read-only inside then)"}


def _quote(word: Word) -> str:
    import shlex

    return repr(word) if isinstance(word, Placeholder) else shlex.quote(word)


def _hidden(policy: Policy, path: str) -> bool:
    return any(m.mode is MountMode.HIDE and is_under(path, m.path) for m in policy.mounts)


def visible_inside(policy: Policy, layout: HostLayout, path: str) -> bool:
    """Whether ``path`` exists inside at the same place (ignoring the empty $HOME and /tmp)."""
    if _hidden(policy, path):
        return False
    return (
        layout.is_visible(path)
        or is_under(path, policy.project)
        or any(m.mode is not MountMode.HIDE and is_under(path, m.path) for m in policy.mounts)
    )


def _identity_note(policy: Policy, identity: Identity) -> str:
    if identity.uid != 0:
        return "same uid and gid"
    if policy.root_stays_root:
        return "root caller: uid 65534 inside, still host uid 0 (--root-stays-root)"
    return f"root caller: uid 65534 inside, host uid {ROOT_COMMAND_UID}"


def _namespaces(policy: Policy, identity: Identity) -> Section:
    ops = [
        Op(("--unshare-user",), "own user namespace: same uid, no capabilities"),
        Op(("--unshare-ipc",), "no host SysV IPC or POSIX message queues"),
        Op(("--unshare-pid",), "own pid namespace: host processes invisible"),
        Op(("--unshare-uts",), "own hostname"),
        Op(("--unshare-cgroup",), "own cgroup namespace"),
    ]
    if policy.net is not NetMode.HOST:
        ops.append(Op(("--unshare-net",), f"network {policy.net.value}: loopback only"))
    if not policy.allow_nested_userns:
        ops.append(Op(("--disable-userns",), "no nested user namespaces (also in seccomp)"))
    ops += [
        Op(("--hostname", SANDBOX_HOSTNAME)),
        Op(
            ("--uid", str(identity.inside_uid), "--gid", str(identity.inside_gid)),
            _identity_note(policy, identity),
        ),
        Op(("--cap-drop", "ALL"), "no capabilities"),
        Op(("--die-with-parent",), "the sandbox dies with the launcher"),
    ]
    return Section("namespaces and identity", tuple(ops))


# /proc as container runtimes leave it (runc's default readonlyPaths and maskedPaths, plus
# /proc/interrupts as moby masks it now). A fresh /proc still writes through to the kernel:
# /proc/sys files are checked against the global root uid, and bwrap covers /proc/sys only
# when it can access(W_OK) it, which a namespaced root cannot, so a root caller's command
# could set core_pattern. Read-only: the sysctls stay readable (those of the sandbox's own
# network namespace included), none is writable.
PROC_READ_ONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
# Masked: kernel memory, keyrings, timers and scheduler internals other users' activity can
# be read from; files read empty (/dev/null, as runc binds it), directories are empty.
PROC_MASKED = ("/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
               "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
               "/proc/timer_stats")


def _kernel_fs(proc_entries: tuple[tuple[str, bool], ...], shm_size: int) -> Section:
    ops = [
        Op(("--proc", "/proc"), "fresh /proc for the own pid namespace"),
        Op(("--dev", "/dev"), "minimal /dev: null, zero, random, tty, own pts; no host shm"),
        Op(("--perms", "1777", "--size", str(shm_size), "--tmpfs", "/dev/shm"),
           "own shared memory, size-capped like /tmp"),
        Op(("--perms", "0755", "--tmpfs", "/run"), "empty /run: no sockets, no agents"),
    ]
    for path, is_dir in proc_entries:
        if path in PROC_READ_ONLY:
            ops.append(Op(("--ro-bind", path, path), "kernel settings, read-only"))
        elif is_dir:
            ops += [Op(("--perms", "0555", "--tmpfs", path), "kernel internals, masked"),
                    Op(("--remount-ro", path))]
        else:
            ops.append(Op(("--dev-bind", "/dev/null", path), "kernel internals, reads empty"))
    return Section("kernel filesystems", tuple(ops))


def _system(layout: HostLayout) -> Section:
    kind = layout.kind.value + (", merged /usr" if layout.merged_usr else "")
    ops = [Op(("--ro-bind", d, d), "system, read-only") for d in layout.ro_dirs]
    ops += [Op(("--symlink", s.target, s.path), "as on the host") for s in layout.symlinks]
    ops += [
        Op(("--ro-bind", "/dev/null", f), "root-only secret, masked") for f in layout.secret_files
    ]
    ops += [
        Op(("--perms", "0700", "--tmpfs", d), "root-only secret dir, masked")
        for d in layout.secret_dirs
    ]
    return Section(f"system, read-only (layout: {kind})", tuple(ops))


def _home_and_tmp(policy: Policy, view: HostView) -> Section:
    home = view.identity.home
    if policy.agent_home:
        home_op = Op(("--perms", "0700", "--size", str(policy.agent_home_size), "--tmpfs",
                      home), f"the {policy.agent} preset's home for this project: filled from "
                     f"{policy.agent_home} at start, saved back at exit, size-capped")
    else:
        home_op = Op(("--perms", "0700", "--size", str(policy.home_size), "--tmpfs", home),
                     "empty, size-capped $HOME")
    tmp = Op(("--bind", WORKDIR, "/tmp"), "--tmp-on-disk: fresh work dir, removed at exit") \
        if policy.tmp_on_disk else Op(("--perms", "1777", "--size", str(policy.tmp_size),
                                       "--tmpfs", "/tmp"), "fresh, size-capped, in memory")
    ops = [
        tmp,
        Op(("--perms", "0755", "--dir", "/var")),
        Op(("--symlink", "../tmp", "/var/tmp")),
        home_op,
    ]
    ops += [Op(("--bind", path, path), "--share-agent-state: the real state, read-write")
            for path in policy.shared_state]
    ops += [
        Op(("--ro-bind", real, inside), "git identity, read-only")
        for inside, real in view.git_configs
    ]
    # A path the user hid stays hidden: the variable then names nothing, as it says.
    ops += [
        Op(("--ro-bind", real, inside), "a CA variable's certificates, read-only")
        for inside, real in view.ca_files
        if not visible_inside(policy, view.layout, inside) and not _hidden(policy, inside)
    ]
    if policy.git_token_file:
        ops += [Op(("--dir", os.path.dirname(GIT_TOKEN))),
                Op(("--ro-bind", policy.git_token_file, GIT_TOKEN),
                   "--git-token-file: HTTPS pushes with this token, read-only")]
    return Section("home and temporary files", tuple(ops))


def _project_and_mounts(policy: Policy, view: HostView, excludes: str) -> Section:
    """The project and extra binds (parents before children, so a narrower --ro inside a
    --rw wins and the project stays writable under a --ro of its parent), then the
    protected files (they win over --rw), then hides (they win over everything)."""
    project = Mount(MountMode.RW, policy.project, "the project, read-write")
    binds = sorted((project, *(m for m in policy.mounts if m.mode is not MountMode.HIDE),
                    *_kept_read_only(policy, view)), key=lambda m: m.path.count("/"))
    flags = {MountMode.RO: "--ro-bind", MountMode.RW: "--bind"}
    ops = [Op((flags[m.mode], m.path, m.path), m.origin) for m in binds]
    ops += _protection_ops(view.protections, binds)
    if excludes:
        ops += [Op(("--dir", os.path.dirname(GIT_EXCLUDES))),
                Op(("--ro-bind-data", GIT_EXCLUDES_FD, GIT_EXCLUDES),
                   "git ignores what you ignore everywhere, and the placeholders")]
    hides = [m for m in policy.mounts if m.mode is MountMode.HIDE]
    hides += _secrets_beneath(policy, view)
    for m in sorted(hides, key=lambda m: m.path.count("/")):
        hide = ("--perms", "0000", "--tmpfs", m.path) if m.is_dir else (
            "--ro-bind", "/dev/null", m.path)
        ops.append(Op(hide, m.origin))
    return Section("project and extra paths", tuple(ops))


def _beneath(policy: Policy, path: str, modes: tuple[MountMode, ...]) -> Mount | None:
    """The --ro/--rw that shows ``path`` without naming it: a broader one (``--ro
    ~/.local`` over ``~/.local/share/keyrings``). Naming the path itself is a choice."""
    return next((m for m in policy.mounts if m.mode in modes and m.path != path
                 and is_under(path, m.path)), None)


def _secrets_beneath(policy: Policy, view: HostView) -> list[Mount]:
    """Keys, tokens, logins and agent homes a broader --ro/--rw would show: hidden."""
    found = []
    for path, is_dir in view.home_secrets:
        m = _beneath(policy, path, (MountMode.RO, MountMode.RW))
        if m is not None:
            found.append(Mount(MountMode.HIDE, path, f"a secret under {m.origin}: hidden "
                               "(name it with --ro to show it)", is_dir=is_dir))
    return found


def _kept_read_only(policy: Policy, view: HostView) -> list[Mount]:
    """The launcher's own configuration under a broader --rw: read-only, or the command
    could widen its next sandbox."""
    path = view.config_dir
    m = _beneath(policy, path, (MountMode.RW,)) if path else None
    return [Mount(MountMode.RO, path, f"agent-sandbox's configuration under {m.origin}: "
                  "read-only (the command may not widen its next sandbox)")] if m else []


def _protection_ops(protections: tuple[Protection, ...], binds: list[Mount]) -> list[Op]:
    ops = []
    for p in protections:
        if p.mode in ("rw", "pin"):
            # A pin re-binds a path from the host: it keeps the --ro an extra bind gave it.
            # (A missing pinned directory is made by the launcher: bwrap binds what exists.)
            inside = [m for m in binds if m.path == p.path or p.path.startswith(m.path + "/")]
            ro = bool(inside) and inside[-1].mode is MountMode.RO
            ops.append(Op(("--ro-bind" if ro else "--bind", p.path, p.path),
                          f"protected: {p.why}"))
        elif p.mode == "ro":
            ops.append(Op(("--ro-bind", p.path, p.path), f"protected: {p.why}"))
        elif p.mode == "copy":
            ops.append(Op(("--ro-bind", p.path, p.path), f"protected: {p.why}", "no-copies"))
        elif p.mode == "placeholder":
            ops.append(Op(("--ro-bind", PLACEHOLDER_SOURCES[p.kind], p.path),
                          f"protected (placeholder, removed at exit): {p.why}"))
    if any(p.mode == "copy" for p in protections):
        ops.append(Op(("--bind", GIT_COPIES, GIT_COPIES_INSIDE), "git configs as writable "
                      "copies, under a symlink mounted over each; everyday keys applied at "
                      "exit (_run.gitcopy)", "copies"))
    return ops


def _in_git_dir(path: str) -> bool:
    return "/.git/" in path


def git_excludes(protections: tuple[Protection, ...], user: str = "") -> str:
    """What git inside ignores: the user's own global patterns (added to, never replaced),
    then the placeholders', anchored at a repository's top (each relative to the work tree
    it was found in)."""
    names = sorted({p.rel for p in protections if p.mode == "placeholder" and p.rel
                    and not _in_git_dir(p.path)})
    ours = "".join(f"/{name}\n" for name in names)
    if not user:
        return ours
    return user + ("" if user.endswith("\n") else "\n") + \
        ("# agent-sandbox: its placeholders\n" + ours if ours else "")


def placeholders(project: str, protections: tuple[Protection, ...]) -> tuple[str, ...]:
    """What bwrap creates in the project for the placeholders, to remove after the sandbox
    (deepest first): each placeholder and the missing parents on its way."""
    paths: dict[str, None] = {}
    for p in protections:
        if p.mode == "placeholder":
            paths[p.path] = None
            paths.update(dict.fromkeys(created_parents(p.path, project)))
    return tuple(sorted(paths, key=lambda path: -path.count("/")))


def build_plan(policy: Policy, view: HostView) -> Plan:
    """The plan for ``policy`` on the host described by ``view``."""
    identity, layout = view.identity, view.layout
    path = _sanitised_path(policy, view)
    host_shell = dict(view.environ).get("SHELL", "")
    shell = host_shell if host_shell and visible_inside(policy, layout, host_shell) else "/bin/sh"
    env = build_env(dict(view.environ), identity, path, shell, policy.env)
    if policy.net is not NetMode.HOST:
        # No keys, no agent, no route: say so instead of ssh's "could not resolve hostname".
        env["GIT_SSH_COMMAND"] = (
            "f() { echo 'agent-sandbox: git over SSH does not work inside the sandbox (no SSH "
            "keys or agent here); push from outside it, or over HTTPS to an allowed host' "
            ">&2; exit 128; }; f")
    git_config = []
    excludes = git_excludes(view.protections, view.git_ignore)
    if excludes:
        git_config.append(("core.excludesFile", GIT_EXCLUDES))
    if policy.git_token_file:
        # An empty value resets the helpers the user's ~/.gitconfig names (their stores are
        # not inside); ours answers with the read-only token file.
        git_config += [("credential.helper", ""), ("credential.helper", GIT_TOKEN_HELPER)]
    if git_config:
        env["GIT_CONFIG_COUNT"] = str(len(git_config))
        for i, (key, value) in enumerate(git_config):
            env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
    host_valued = {r.name for r in policy.env if r.value is None and r.name in env}
    rules = default_rules(allow_nested_userns=policy.allow_nested_userns,
                          no_setid_files=identity.uid == 0)
    net = _net_plan(policy)
    if net is not None and net.filtered:
        for name in PROXY_VARIABLES:
            if name in env:
                raise UsageError(f"--env {name}: --net filtered sets the proxy variables")
        env.update(proxy_environment())
    home = _home_and_tmp(policy, view)
    project = _project_and_mounts(policy, view, excludes)
    dropped = identity.uid == 0 and not policy.root_stays_root
    sections = (
        _namespaces(policy, identity),
        _kernel_fs(view.proc_entries, policy.tmp_size),
        _system(layout),
        home,
        project,
        Section("process", (Op(("--chdir", policy.cwd), "same directory as outside"),)),
        _seccomp_section(rules),
        *((_network_section(net, layout),) if net is not None else ()),
        *((_gpu_section(view.gpu_devices),) if policy.gpu else ()),
        Section("setup done", (Op(("--dir", READY), "made once every mount is there: the "
                                  "launcher waits for it before the command starts"),)),
        # Last: every mount point above is made by now. The skeleton bwrap builds in memory
        # (/, /var, /dev, /run) is the command's own and uncapped: writes there would take
        # host memory and vanish at exit without a word, so they fail (EROFS) instead.
        Section("read-only skeleton", (
            Op(("--remount-ro", "/dev")), Op(("--remount-ro", "/run")),
            Op(("--remount-ro", "/"), "writes land only in the project, $HOME, /tmp, "
               "/dev/shm and --rw paths"))),
    )
    shield: tuple[str, ...] = ()
    if view.signal_reset_env and visible_inside(policy, layout, view.signal_reset_env):
        shield = (view.signal_reset_env, "--default-signal=INT,QUIT", "--")
    starter: tuple[Word, ...] = ()
    if view.start_shell and visible_inside(policy, layout, view.start_shell):
        starter = (view.start_shell, "-c", STARTER_SCRIPT, "agent-sandbox-start", STARTED_FD)
    return Plan(
        policy=policy,
        sections=sections,
        env=tuple(sorted(env.items())),
        host_valued=frozenset(host_valued),
        starter=starter,
        shield=shield,
        net=net,
        placeholders=placeholders(policy.project, view.protections),
        protections=view.protections,
        git_excludes=excludes,
        host_excludes=view.host_excludes,
        bwrap_prefix=systemd_scope_argv(policy.systemd_run, policy.limits)
        if policy.systemd_run else (),
        seccomp=rules,
        command_uid=ROOT_COMMAND_UID if dropped else None,
        # Everything bwrap binds from the host but the system and /dev/null: what the user
        # and the launcher put there, which a root caller's command must reach as its own.
        staged_sources=tuple(dict.fromkeys(
            op.words[1] for section in (home, project) for op in section.ops
            if op.words[0] in _BINDS and op.words[1] != "/dev/null")) if dropped else (),
    )


def _net_plan(policy: Policy) -> NetPlan | None:
    filtered = policy.net is NetMode.FILTERED
    if not (filtered or policy.forwards or policy.publish):
        return None
    return NetPlan(filtered=filtered, entries=policy.allow, pins=policy.pins,
                   forwards=policy.forwards, publish=policy.publish)


def _network_section(net: NetPlan, layout: HostLayout) -> Section:
    ops = [Op(("--block-fd", BLOCK_FD), "wait until the launcher serves the network")]
    if net.filtered:
        for path, fd, what in ((layout.hosts_path, HOSTS_FD, "allowed names"),
                               (layout.resolv_path, RESOLV_FD, "the sandbox's DNS responder")):
            if path.startswith("/run/"):  # behind a symlink into the empty /run
                ops.append(Op(("--dir", path.rsplit("/", 1)[0])))
            ops.append(Op(("--ro-bind-data", fd, path), what))
    names = [e.origin.split(" ", 1)[-1] for e in net.entries]
    title = ("network: filtered, allowed " + (", ".join(names) or "nothing")
             if net.filtered else "network: loopback only")
    extras = [f.origin for f in net.forwards] + [f"--publish {p}" for p in net.publish]
    return Section(title + ("; " + ", ".join(extras) if extras else ""), tuple(ops))


def _gpu_section(devices: tuple[str, ...]) -> Section:
    """Device nodes need a device bind (a plain bind is nodev); permissions still apply."""
    ops = [Op(("--dev-bind", d, d), "--gpu") for d in devices]
    return Section("GPU (--gpu)" + ("" if devices else ": no GPU device on this host"),
                   tuple(ops))


def _seccomp_section(rules: tuple[Rule, ...]) -> Section:
    names = sorted({r.syscall for r in rules})
    return Section(
        f"seccomp: {len(rules)} rules on {len(names)} syscalls, native architecture only "
        "(other architectures and x32 numbers are killed)",
        (Op(("--seccomp", SECCOMP_FD), "rules for: " + " ".join(names)),),
    )


def _sanitised_path(policy: Policy, view: HostView) -> list[str]:
    return sanitise_path(view.path_entries, lambda p: visible_inside(policy, view.layout, p))
