"""The plan is pure: a fixed policy and host view always give the same bwrap argv (golden)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent_sandbox._errors import UsageError
from agent_sandbox._plan.build import SECCOMP_FD, WORKDIR, HostView, Placeholder, build_plan
from agent_sandbox._plan.host import HostLayout, LayoutKind, Symlink
from agent_sandbox._policy.identity import Identity
from agent_sandbox._policy.values import EnvRequest, Mount, MountMode, NetMode, Policy

GOLDEN = Path(__file__).parent / "golden"
VALUES = {WORKDIR: "/w", SECCOMP_FD: "9"}

LAYOUT = HostLayout(
    kind=LayoutKind.FHS,
    merged_usr=True,
    ro_dirs=("/etc", "/usr"),
    symlinks=(Symlink("/bin", "usr/bin"), Symlink("/lib64", "usr/lib64")),
    secret_files=("/etc/shadow",),
    secret_dirs=("/etc/ssl/private",),
)
USER = Identity(uid=1000, gid=1000, user="alice", home="/home/alice")
HOST_ENV = {
    "PATH": "/home/alice/.local/bin:/usr/local/bin:/usr/bin:/bin:.::/opt/x/bin",
    "HOME": "/home/alice", "TERM": "xterm-256color", "LANG": "en_US.UTF-8",
    "LC_TIME": "de_DE.UTF-8", "SHELL": "/usr/bin/zsh", "ANTHROPIC_API_KEY": "sk-secret",
    "AWS_SECRET_ACCESS_KEY": "aws", "LD_PRELOAD": "/evil.so", "SSH_AUTH_SOCK": "/run/x",
    "NODE_OPTIONS": "--require /evil.js", "DISPLAY": ":0", "EDITOR": "vim",
}


def _view(identity: Identity = USER, env: dict[str, str] | None = None) -> HostView:
    environ = HOST_ENV if env is None else env
    return HostView(
        identity=identity,
        layout=LAYOUT,
        environ=tuple(sorted(environ.items())),
        path_entries=tuple((p, p) for p in environ["PATH"].split(":")),
        git_configs=(("/home/alice/.gitconfig", "/home/alice/.gitconfig"),),
        proc_entries=(("/proc/acpi", True), ("/proc/keys", False), ("/proc/sys", True)),
    )


def _policy(**kw: object) -> Policy:
    base: dict[str, object] = dict(
        project="/home/alice/src/my project", cwd="/home/alice/src/my project/sub",
        command=("claude", "--flag", "-x"),
    )
    base.update(kw)
    return Policy(**base)  # type: ignore[arg-type]


def test_golden_plan() -> None:
    policy = _policy(
        mounts=(
            Mount(MountMode.HIDE, "/home/alice/src/my project/.env", "--hide .env", is_dir=False),
            Mount(MountMode.RO, "/opt/x", "--ro /opt/x"),
            Mount(MountMode.HIDE, "/opt/x/secrets", "--hide /opt/x/secrets"),
        ),
        env=(EnvRequest("ANTHROPIC_API_KEY"), EnvRequest("FOO", "bar baz")),
    )
    text = build_plan(policy, _view()).describe()
    golden = GOLDEN / "plan_fhs.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_argv_fills_the_workdir_and_ends_with_the_command() -> None:
    plan = build_plan(_policy()._replace(tmp_on_disk=True), _view())
    argv = plan.bwrap_args({WORKDIR: "/tmp/agent-sandbox-1000/1-abc", SECCOMP_FD: "7"})
    assert argv[argv.index("--bind") + 1 : argv.index("--bind") + 3] == [
        "/tmp/agent-sandbox-1000/1-abc", "/tmp"]
    assert argv[-4:] == ["--", "claude", "--flag", "-x"]
    assert argv[argv.index("--seccomp") + 1] == "7"
    assert not any(isinstance(w, Placeholder) for w in argv)


def test_every_namespace_is_unshared_and_no_new_session() -> None:
    argv = build_plan(_policy(), _view()).bwrap_args(VALUES)
    for flag in ("--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-uts",
                 "--unshare-cgroup", "--unshare-net", "--die-with-parent"):
        assert flag in argv
    assert "--new-session" not in argv  # TUIs need job control and SIGWINCH


def test_host_network_keeps_the_other_namespaces() -> None:
    argv = build_plan(_policy(net=NetMode.HOST), _view()).bwrap_args(VALUES)
    assert "--unshare-net" not in argv and "--unshare-pid" in argv


def test_root_caller_runs_unprivileged_inside() -> None:
    root = Identity(uid=0, gid=0, user="root", home="/root")
    argv = build_plan(_policy(project="/srv/p", cwd="/srv/p"), _view(root)).bwrap_args(VALUES)
    i = argv.index("--uid")
    assert argv[i : i + 4] == ["--uid", "65534", "--gid", "65534"]


def test_environment_is_an_allow_list() -> None:
    env = dict(build_plan(_policy(env=(EnvRequest("ANTHROPIC_API_KEY"),)), _view()).env)
    assert env == {
        "AGENT_SANDBOX_ACTIVE": "1",
        "ANTHROPIC_API_KEY": "sk-secret",
        "EDITOR": "vim",
        "GIT_SSH_COMMAND": dict(build_plan(_policy(), _view()).env)["GIT_SSH_COMMAND"],
        "HOME": "/home/alice",
        "LANG": "en_US.UTF-8",
        "LC_TIME": "de_DE.UTF-8",
        "LOGNAME": "alice",
        # ~/.local/bin is hidden, "." and "" never survive, /opt/x/bin is not shown.
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "SHELL": "/usr/bin/zsh",
        "TERM": "xterm-256color",
        "TMPDIR": "/tmp",
        "USER": "alice",
    }


def test_hidden_path_entry_is_replaced_by_its_visible_target() -> None:
    view = HostView(
        identity=USER, layout=LAYOUT, environ=(("PATH", "/home/alice/.nix-profile/bin"),),
        path_entries=(("/home/alice/.nix-profile/bin", "/usr/lib/nix-profile/bin"),),
        git_configs=(),
    )
    assert dict(build_plan(_policy(), view).env)["PATH"] == "/usr/lib/nix-profile/bin"


def test_shell_falls_back_when_the_host_shell_is_hidden() -> None:
    env = dict(HOST_ENV, SHELL="/home/alice/.local/bin/fish")
    assert dict(build_plan(_policy(), _view(env=env)).env)["SHELL"] == "/bin/sh"


@pytest.mark.parametrize(
    "name", ["LD_PRELOAD", "LD_AUDIT", "NODE_OPTIONS", "PYTHONSTARTUP", "BASH_ENV",
             "GIT_CONFIG_COUNT", "GIT_CONFIG_PARAMETERS", "PERL5OPT", "JAVA_TOOL_OPTIONS",
             "DOTNET_STARTUP_HOOKS", "GLIBC_TUNABLES", "BASH_FUNC_x", "HOME", "TMPDIR",
             "AGENT_SANDBOX_ACTIVE"],
)
def test_injection_and_sandbox_owned_variables_are_refused(name: str) -> None:
    with pytest.raises(UsageError, match=name):
        build_plan(_policy(env=(EnvRequest(name, "x"),)), _view())


def test_dry_run_never_prints_host_values() -> None:
    text = build_plan(_policy(env=(EnvRequest("ANTHROPIC_API_KEY"),)), _view()).describe()
    assert "sk-secret" not in text
    assert "ANTHROPIC_API_KEY=<from host>" in text


def test_extra_mounts_parents_first_hides_last() -> None:
    policy = _policy(mounts=(
        Mount(MountMode.HIDE, "/opt/a/b", "--hide"),
        Mount(MountMode.RO, "/opt/a/b/c", "--ro"),
        Mount(MountMode.RW, "/opt/a", "--rw"),
    ))
    argv = build_plan(policy, _view()).bwrap_args(VALUES)
    order = [argv.index("/opt/a"), argv.index("/opt/a/b/c"), argv.index("/opt/a/b")]
    assert order == sorted(order)


def test_terminal_signal_shield_wraps_the_command() -> None:
    view = _view()._replace(signal_reset_env="/usr/bin/env")
    plan = build_plan(_policy(), view)
    assert plan.shield_terminal_signals
    assert plan.bwrap_args(VALUES)[-7:] == ["--", "/usr/bin/env", "--default-signal=INT,QUIT",
                                          "--", "claude", "--flag", "-x"]
    # Without a capable env (or one the sandbox does not show), nothing is ignored.
    assert not build_plan(_policy(), _view()).shield_terminal_signals
    hidden = _view()._replace(signal_reset_env="/home/alice/bin/env")
    assert not build_plan(_policy(), hidden).shield_terminal_signals


def test_gpu_binds_the_host_devices_as_devices() -> None:
    view = _view()._replace(gpu_devices=("/dev/nvidia0", "/dev/nvidiactl", "/dev/dri"))
    argv = build_plan(_policy(gpu=True), view).bwrap_args(VALUES)
    for device in ("/dev/nvidia0", "/dev/nvidiactl", "/dev/dri"):
        i = argv.index(device)
        assert argv[i - 1] == "--dev-bind" and argv[i + 1] == device
    assert "/dev/dri" not in build_plan(_policy(), view).bwrap_args(VALUES)


def test_cgroup_limits_run_bwrap_in_a_systemd_scope() -> None:
    from agent_sandbox._policy.limits import Limits

    policy = _policy(limits=Limits(memory=1024**3), systemd_run="/usr/bin/systemd-run")
    plan = build_plan(policy, _view())
    assert plan.bwrap_prefix[:3] == ("/usr/bin/systemd-run", "--user", "--scope")
    assert "MemoryMax=1073741824" in plan.bwrap_prefix
    assert build_plan(_policy(), _view()).bwrap_prefix == ()


@pytest.mark.parametrize("name", ["aider", "claude", "codex", "gemini", "opencode"])
def test_golden_plan_per_preset(name: str) -> None:
    """Each preset's plan, as the CLI builds it: its hosts (filtered network), variables
    and its own home at $HOME."""
    from agent_sandbox._net.allow import parse_allow
    from agent_sandbox._policy.presets import load

    preset = load(name)
    policy = _policy(
        command=(name,), net=NetMode.FILTERED,
        allow=tuple(parse_allow(h) for h in preset.allow),
        env=tuple(EnvRequest(v) for v in preset.env),
        agent=name, agent_home=f"/home/alice/.local/share/agent-sandbox/homes/{name}",
    )
    text = build_plan(policy, _view()).describe()
    golden = GOLDEN / f"plan_preset_{name}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_a_root_callers_plan_runs_bwrap_as_the_command_uid_with_staged_sources() -> None:
    from agent_sandbox._policy.identity import ROOT_COMMAND_UID

    root = Identity(uid=0, gid=0, user="root", home="/root")
    # With /tmp on disk, the work dir is staged too (by default /tmp is a tmpfs).
    policy = _policy(project="/root/src/p", cwd="/root/src/p")._replace(tmp_on_disk=True)
    view = _view(root)._replace(git_configs=(("/root/.gitconfig", "/root/.gitconfig"),))
    plan = build_plan(policy, view)
    assert plan.command_uid == ROOT_COMMAND_UID
    assert plan.staged_sources == (WORKDIR, "/root/.gitconfig", "/root/src/p")
    assert build_plan(policy._replace(tmp_on_disk=False), view).staged_sources == (
        "/root/.gitconfig", "/root/src/p")
    assert f"bwrap runs as host uid {ROOT_COMMAND_UID}" in plan.describe()
    args = plan.bwrap_args({**VALUES, WORKDIR: "/w"}, {"/w": "/tmp/2", "/root/src/p": "/tmp/1"})
    at = args.index("/tmp/2")
    assert args[at - 1:at + 2] == ["--bind", "/tmp/2", "/tmp"]
    at = args.index("/tmp/1")
    assert args[at - 1:at + 2] == ["--bind", "/tmp/1", "/root/src/p"]
    # Root callers also get the set-id rules; --root-stays-root keeps host uid 0.
    assert any(r.syscall == "fchmodat2" for r in plan.seccomp)
    stays = build_plan(policy._replace(root_stays_root=True), view)
    assert stays.command_uid is None and stays.staged_sources == ()
    assert "--root-stays-root" in stays.describe()


def test_made_paths_are_every_operations_destination_and_its_parents() -> None:
    plan = build_plan(_policy(), _view())
    made = plan.made_paths()
    for path in ("/home", "/home/alice", "/home/alice/.gitconfig", "/home/alice/src",
                 "/home/alice/src/my project", "/var", "/var/tmp", "/tmp", "/usr", "/bin",
                 "/run/agent-sandbox/ready", "/proc", "/dev"):
        assert path in made, path
    assert "/" not in made and "claude" not in made and "9" not in made
    # The last operation that makes something is the one the launcher waits for (only the
    # read-only remounts of the skeleton come after it).
    last = [op for s in plan.sections for op in s.ops if op.dest][-1]
    assert last.words == ("--dir", "/run/agent-sandbox/ready")
    assert plan.sections[-1].title == "read-only skeleton"


def test_the_temporary_home_is_only_the_sandboxs_own_tmpfs() -> None:
    assert build_plan(_policy(), _view()).temporary_home() == "/home/alice"
    at_home = _policy(project="/home/alice", cwd="/home/alice")
    assert build_plan(at_home, _view()).temporary_home() is None  # the project covers it
    above = _policy(mounts=(Mount(MountMode.RO, "/home", "--ro /home"),))
    assert build_plan(above, _view()).temporary_home() is None
    agent = _policy(agent="claude", agent_home="/x/agents/claude/p")
    assert build_plan(agent, _view()).temporary_home() is None
