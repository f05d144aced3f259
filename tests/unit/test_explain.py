"""`agent-sandbox explain`, the pure parts: the plan's mount table, which mount decides a path
(later mounts win, deeper ones override), symlinks followed as inside, the layer behind a
rule, and host answers from the real network decision."""

from __future__ import annotations

import pytest

from agent_sandbox._cli.explain import (
    HIDDEN,
    MASKED,
    READ_ONLY,
    READ_WRITE,
    REPLACED,
    HostFs,
    Origins,
    covering,
    is_path,
    judge_host,
    judge_path,
    layer_of,
    mount_table,
    resolve_inside,
    split_target,
)
from agent_sandbox._errors import UsageError
from agent_sandbox._net.allow import parse_allow, parse_forward
from agent_sandbox._plan.build import HostView, Plan, build_plan
from agent_sandbox._plan.host import HostLayout, LayoutKind, Symlink
from agent_sandbox._plan.protect import Protection
from agent_sandbox._policy.config import Value
from agent_sandbox._policy.identity import Identity
from agent_sandbox._policy.values import Mount, MountMode, NetMode, Policy

USER = Identity(uid=1000, gid=1000, user="alice", home="/home/alice")
PROJECT = "/home/alice/src/app"
LAYOUT = HostLayout(kind=LayoutKind.FHS, merged_usr=True, ro_dirs=("/etc", "/usr"),
                    symlinks=(Symlink("/bin", "usr/bin"),), secret_files=("/etc/shadow",),
                    secret_dirs=("/etc/ssl/private",))
PROTECTIONS = (
    Protection(f"{PROJECT}/.git", "rw", "pinned: .git cannot be renamed away and replaced"),
    Protection(f"{PROJECT}/.envrc", "placeholder", "executed or trusted by host tools", "file"),
    Protection(f"{PROJECT}/.git/hooks", "ro", "git hooks: run or read by git on the host"),
    Protection(f"{PROJECT}/Makefile", "ro", "protect"),
    Protection(f"{PROJECT}/.git/config", "copy", "git config: run or read by git on the host"),
)
MOUNTS = (
    Mount(MountMode.RO, "/data", "--ro /data"),
    Mount(MountMode.RW, "/data/scratch", "--rw /data/scratch"),
    Mount(MountMode.HIDE, f"{PROJECT}/secrets", f"--hide {PROJECT}/secrets"),
    Mount(MountMode.HIDE, f"{PROJECT}/.env", "--hide .env", is_dir=False),
)
SETTINGS = {
    "ro": Value(("/data",), "/etc/agent-sandbox/config.toml:3"),
    "rw": Value(("/data/scratch",), "--rw"),
    "hide": Value((f"{PROJECT}/secrets", ".env"), "x",
                  (f"{PROJECT}/.agent-sandbox.toml:1", "AGENT_SANDBOX_HIDE")),
    "protect": Value(("Makefile",), "/home/alice/.config/agent-sandbox/config.toml:2"),
}
# The host: a link in the project to a system file, one in $HOME to the project.
LINKS = {f"{PROJECT}/etc-link": "/etc/passwd", "/home/alice/app": "src/app"}
FILES = {"/data/scratch/out", f"{PROJECT}/main.py", "/etc/passwd", "/usr/bin/ls"}
FS = HostFs(lambda p: p in FILES or p in LINKS, LINKS.get)


def _plan(**policy: object) -> Plan:
    base: dict[str, object] = dict(project=PROJECT, cwd=PROJECT, command=("sh",),
                                   mounts=MOUNTS)
    view = HostView(identity=USER, layout=LAYOUT, environ=(("PATH", "/usr/bin"),),
                    path_entries=(("/usr/bin", "/usr/bin"),), git_configs=(),
                    protections=PROTECTIONS)
    return build_plan(Policy(**{**base, **policy}), view)  # type: ignore[arg-type]


def _origins(plan: Plan) -> Origins:
    return Origins(SETTINGS, plan.policy, PROTECTIONS, "--project (command line)", USER.home)


def _judge(path: str, plan: Plan | None = None) -> tuple[str, str]:
    """(state, the deciding op's text) for ``path``."""
    answer = judge_path(mount_table(plan or _plan()), path, FS, LAYOUT.secret_dirs)
    return answer.state, answer.mounted.op.text() if answer.mounted else ""


def test_the_mount_table_keeps_bwrap_order_and_skips_non_mounts() -> None:
    table = mount_table(_plan())
    assert "--unshare-user" not in [m.verb for m in table]
    dests = [m.dest for m in table]
    assert dests.index("/usr") < dests.index("/home/alice") < dests.index(PROJECT)
    home = next(m for m in table if m.dest == "/home/alice")
    assert (home.verb, home.perms, home.source) == ("--tmpfs", "0700", None)


@pytest.mark.parametrize("path, state, op", [
    (f"{PROJECT}/main.py", READ_WRITE, f"--bind {PROJECT} {PROJECT}"),
    ("/usr/share/doc", READ_ONLY, "--ro-bind /usr /usr"),
    ("/home/alice/.ssh", HIDDEN, "--perms 0700 --size 536870912 --tmpfs /home/alice"),
    ("/home/alice", REPLACED, "--perms 0700 --size 536870912 --tmpfs /home/alice"),
    ("/tmp/x", HIDDEN, "--perms 1777 --size 2147483648 --tmpfs /tmp"),
    ("/tmp", REPLACED, "--perms 1777 --size 2147483648 --tmpfs /tmp"),
    ("/srv/elsewhere", HIDDEN, ""),
    ("/etc/shadow", MASKED, "--ro-bind /dev/null /etc/shadow"),
    ("/etc/ssl/private/key.pem", MASKED, "--perms 0700 --tmpfs /etc/ssl/private"),
    (f"{PROJECT}/secrets/a", MASKED, f"--perms 0000 --tmpfs {PROJECT}/secrets"),
    (f"{PROJECT}/.env", MASKED, f"--ro-bind /dev/null {PROJECT}/.env"),
    (f"{PROJECT}/.envrc", MASKED, f"--ro-bind $PLACEHOLDER_FILE {PROJECT}/.envrc"),
    (f"{PROJECT}/.git/hooks/pre-commit", READ_ONLY,
     f"--ro-bind {PROJECT}/.git/hooks {PROJECT}/.git/hooks"),
    (f"{PROJECT}/.git/HEAD", READ_WRITE, f"--bind {PROJECT}/.git {PROJECT}/.git"),
    # A writable copy under a symlink (_run.gitcopy); read-only only as the fallback.
    (f"{PROJECT}/.git/config", REPLACED,
     f"--ro-bind {PROJECT}/.git/config {PROJECT}/.git/config"),
    ("/proc/1/environ", REPLACED, "--proc /proc"),
])
def test_the_last_mount_at_or_above_decides(path: str, state: str, op: str) -> None:
    assert _judge(path) == (state, op)


def test_a_deeper_later_mount_overrides_and_a_later_parent_covers() -> None:
    # --rw /data/scratch comes after --ro /data (parents first): it wins below itself only.
    assert _judge("/data/scratch/out")[0] == READ_WRITE
    assert _judge("/data/other")[0] == READ_ONLY
    table = mount_table(_plan())
    reordered = [m for m in table if m.dest != "/data"] + [m for m in table if m.dest == "/data"]
    covered = covering(reordered, "/data/scratch/out")
    assert covered is not None and covered.dest == "/data"


def test_symlinks_are_followed_as_inside() -> None:
    table = mount_table(_plan())
    # The plan's own link: /bin -> usr/bin.
    inside, links = resolve_inside(table, "/bin/ls", FS)
    assert inside == "/usr/bin/ls" and links[0].how.startswith("made by the plan")
    # /var/tmp is a symlink to the private /tmp inside, whatever the host has there.
    assert judge_path(table, "/var/tmp/x", FS, ()).inside == "/tmp/x"
    # The host's link, seen through the project bind: its target decides.
    answer = judge_path(table, f"{PROJECT}/etc-link", FS, ())
    assert (answer.inside, answer.state) == ("/etc/passwd", READ_ONLY)
    assert answer.links[0].how == "the host's symlink"
    # A link in the empty $HOME is not there at all, whatever it points to.
    answer = judge_path(table, "/home/alice/app/main.py", FS, ())
    assert (answer.state, answer.links, answer.exists) == (HIDDEN, (), False)


def test_a_symlink_loop_is_a_usage_error() -> None:
    loop = HostFs(lambda p: True, lambda p: p if p.startswith(PROJECT + "/") else None)
    with pytest.raises(UsageError, match="too many levels"):
        resolve_inside(mount_table(_plan()), f"{PROJECT}/x", loop)


def test_existence_inside() -> None:
    table = mount_table(_plan())
    assert judge_path(table, f"{PROJECT}/main.py", FS, ()).exists
    assert judge_path(table, f"{PROJECT}/.envrc", FS, ()).exists  # a placeholder
    assert not judge_path(table, f"{PROJECT}/new.py", FS, ()).exists


@pytest.mark.parametrize("path, layer", [
    ("/data/x", "/etc/agent-sandbox/config.toml:3"),
    ("/data/scratch/out", "--rw (command line)"),
    (f"{PROJECT}/secrets", f"{PROJECT}/.agent-sandbox.toml:1"),
    (f"{PROJECT}/.env", "AGENT_SANDBOX_HIDE (environment)"),
    (f"{PROJECT}/Makefile", "protect Makefile: /home/alice/.config/agent-sandbox/config.toml:2"),
    (f"{PROJECT}/.git/hooks", "built-in: the protected names"),
    (f"{PROJECT}/main.py", "--project (command line)"),
    ("/usr/bin/ls", "built-in (system, read-only (layout: fhs, merged /usr))"),
])
def test_the_layer_behind_the_rule(path: str, layer: str) -> None:
    plan = _plan()
    answer = judge_path(mount_table(plan), path, FS, ())
    assert answer.mounted is not None
    assert layer_of(answer.mounted, _origins(plan)).startswith(layer)


def test_an_agent_home_is_the_preset_layer() -> None:
    saved = "/home/alice/.local/share/agent-sandbox/agents/claude/p-0123456789abcdef"
    plan = _plan(agent="claude", agent_home=saved)
    answer = judge_path(mount_table(plan), "/home/alice/.ssh", FS, ())
    assert answer.state == HIDDEN and "the sandbox's own" in answer.detail
    assert answer.mounted is not None
    assert layer_of(answer.mounted, _origins(plan)) == \
        f"the claude preset (its home for this project, {saved})"


@pytest.mark.parametrize("text, path", [
    ("/etc", True), ("./x", True), ("../x", True), (".envrc", True), ("~/.ssh", True),
    ("~", True), ("example.com", False), ("example.com:8443", False), ("src/x", False),
])
def test_path_or_host_syntax(text: str, path: bool) -> None:
    assert is_path(text) is path


def test_split_target() -> None:
    assert split_target("API.Example.com.") == ("api.example.com", None)
    assert split_target("example.com:8443") == ("example.com", 8443)
    assert split_target("[::1]:80") == ("::1", 80)
    assert split_target("1.2.3.4") == ("1.2.3.4", None)
    for bad in ("a b", "", "x:99999", "*.example.com", "-x.com", "src/main.py"):
        with pytest.raises(UsageError):
            split_target(bad)


ALLOW_SETTINGS = {"allow": Value(("api.example.com", "*.npmjs.org:8080"), "x",
                                 ("preset:claude", "/etc/agent-sandbox/config.toml:4")),
                  "allow_private": Value(("llm.corp",), "--allow-private")}


def _filtered(**extra: object) -> Policy:
    entries = (parse_allow("api.example.com"), parse_allow("*.npmjs.org:8080"),
               parse_allow("llm.corp", private=True, origin="--allow-private"))
    return Policy(project=PROJECT, cwd=PROJECT, command=("sh",), net=NetMode.FILTERED,
                  allow=entries, **extra)  # type: ignore[arg-type]


def test_an_allowed_host_names_its_entry_ports_and_layer() -> None:
    text = "\n".join(judge_host(_filtered(), ALLOW_SETTINGS, "api.example.com", None))
    assert text.startswith("api.example.com: allowed on ports 443, 80\n")
    assert "port 443: --allow api.example.com    layer: preset:claude" in text
    assert "looked up when the command connects" in text and "--allow-private" in text
    text = "\n".join(judge_host(_filtered(), ALLOW_SETTINGS, "a.b.npmjs.org", None))
    assert text.startswith("a.b.npmjs.org: allowed on port 8080\n")
    assert "layer: /etc/agent-sandbox/config.toml:4" in text


def test_a_denied_host_says_why_and_the_flag_that_would_allow_it() -> None:
    lines = judge_host(_filtered(), ALLOW_SETTINGS, "evil.com", None)
    assert lines[0] == "evil.com: denied (not in the allow-list)"
    assert lines[-1] == "  to allow it: --allow evil.com"
    lines = judge_host(_filtered(), ALLOW_SETTINGS, "api.example.com", 22)
    assert lines[0].startswith("api.example.com:22: denied (port 22 not allowed")
    assert "  entry:   --allow api.example.com    layer: preset:claude" in lines
    assert judge_host(_filtered(), {}, "npmjs.org", 8080)[0].endswith("not in the allow-list)")
    assert "IP literals are refused" in judge_host(_filtered(), {}, "10.0.0.1", None)[0]


def test_a_pinned_address_is_judged_by_the_real_address_check() -> None:
    policy = _filtered(pins=(("api.example.com", "10.0.0.5"), ("llm.corp", "10.0.0.6")))
    text = "\n".join(judge_host(policy, ALLOW_SETTINGS, "api.example.com", 443))
    assert "10.0.0.5, pinned by --resolve (no lookup): refused at connection time: private " \
           "address (--allow-private api.example.com would accept it)" in text
    text = "\n".join(judge_host(policy, ALLOW_SETTINGS, "llm.corp", 443))
    assert "10.0.0.6, pinned by --resolve (no lookup): accepted" in text


def test_other_network_modes_and_loopback() -> None:
    none = Policy(project=PROJECT, cwd=PROJECT, command=("sh",))
    assert judge_host(none, {}, "example.com", None)[0].startswith(
        "example.com: denied (--net none")
    host = none._replace(net=NetMode.HOST)
    assert "allowed (--net host" in judge_host(host, {"net": Value("host", "--net")},
                                               "example.com", None)[0]
    forwarded = none._replace(forwards=(parse_forward("11434"),))
    assert "--forward-host 11434 relays it" in judge_host(forwarded, {}, "localhost", 11434)[0]
    assert "--forward-host 3000" in judge_host(none, {}, "127.0.0.1", 3000)[0]


def test_config_tracks_where_each_list_item_came_from() -> None:
    value = Value(("a", "b", "a"), "x", ("f:1", "--allow", "AGENT_SANDBOX_ALLOW"))
    assert value.sources_of("a") == ["f:1", "AGENT_SANDBOX_ALLOW"]
    assert Value(("a",), "f:2").sources_of("a") == ["f:2"]
