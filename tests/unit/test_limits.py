"""Limit values and how they are enforced: the pure parts, and the delegated cgroup's side
effects on a fake cgroup tree (the live parts are integration tests)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from agent_sandbox._errors import SandboxUnavailable, UsageError
from agent_sandbox._policy.limits import (
    DEFAULT_PIDS,
    CgroupWay,
    Limits,
    default_memory,
    is_no_cap,
    parse_duration,
    parse_positive,
    parse_size,
    systemd_scope_argv,
)
from agent_sandbox._run import cgroup as _cgroup
from agent_sandbox._run.cgroup import (
    CONTROLLERS,
    NOT_UNIFIED,
    Mount,
    Parent,
    Probe,
    Setting,
    add_process,
    cgroup_dir,
    cgroup_way,
    decide,
    find_parent,
    hierarchy,
    needed,
    own_cgroup,
    parse_mountinfo,
    sandbox_cgroup,
    settings,
)


@pytest.mark.parametrize("text, value", [("512M", 512 * 1024**2), ("4G", 4 * 1024**3),
                                         ("1.5g", int(1.5 * 1024**3)), ("1048576", 1048576),
                                         ("64KiB", 65536), ("2T", 2 * 1024**4)])
def test_sizes(text: str, value: int) -> None:
    assert parse_size(text, "--memory") == value


@pytest.mark.parametrize("text, value", [("90", 90.0), ("90s", 90.0), ("30m", 1800.0),
                                         ("2h", 7200.0), ("1d", 86400.0), ("0.5", 0.5)])
def test_durations(text: str, value: float) -> None:
    assert parse_duration(text, "--timeout") == value


@pytest.mark.parametrize("call", [
    lambda: parse_size("lots", "--memory"), lambda: parse_size("0", "--memory"),
    lambda: parse_size("-1G", "--memory"), lambda: parse_duration("soon", "--timeout"),
    lambda: parse_duration("0s", "--timeout"), lambda: parse_positive("1.5", "--pids", int),
    lambda: parse_positive("0", "--cpus", float), lambda: parse_positive("x", "--cpus", float),
])
def test_bad_values_name_the_flag(call: object) -> None:
    with pytest.raises(UsageError, match=r"^--"):
        call()  # type: ignore[operator]


def test_the_systemd_scope_carries_every_asked_limit() -> None:
    argv = systemd_scope_argv("/usr/bin/systemd-run",
                              Limits(memory=1024**3, pids=512, cpus=1.5))
    assert argv == ("/usr/bin/systemd-run", "--user", "--scope", "--quiet", "--collect",
                    "-p", "MemoryMax=1073741824", "-p", "MemorySwapMax=0",
                    "-p", "TasksMax=512", "-p", "CPUQuota=150%", "--")
    assert Limits(timeout=5).cgroup is False and Limits(pids=1).cgroup is True


# --- cgroup v2: the pure parts --------------------------------------------------------------

UNIFIED = ("25 1 0:22 / /sys ro,nosuid - sysfs sysfs rw\n"
           "30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev shared:4 - cgroup2 cgroup2 "
           "rw,nsdelegate,memory_recursiveprot\n")
HYBRID = ("31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
          "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
          "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n")


def test_mountinfo_gives_the_filesystem_on_top_of_each_mount_point() -> None:
    mounts = parse_mountinfo(UNIFIED + "99 30 0:40 /x /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
                             "50 25 8:1 /a\\040b /mnt/my\\040disk rw shared:1 - ext4 /dev/sda1 rw\n"
                             "garbage\n")
    assert mounts["/sys/fs/cgroup"] == Mount("tmpfs", "/x")  # mounted later: on top
    assert mounts["/mnt/my disk"] == Mount("ext4", "/a b")
    assert parse_mountinfo(UNIFIED)["/sys/fs/cgroup"] == Mount("cgroup2", "/")


@pytest.mark.parametrize("text, mode", [(UNIFIED, "unified (v2)"), (HYBRID, "hybrid (v1 + v2)"),
                                        (HYBRID.splitlines()[0], "v1 only"), ("", "v1 only")])
def test_the_cgroup_hierarchy_is_named(text: str, mode: str) -> None:
    assert hierarchy(parse_mountinfo(text)) == mode


@pytest.mark.parametrize("text, path", [
    ("0::/user.slice/user-1000.slice/session-2.scope\n", "/user.slice/user-1000.slice/"
     "session-2.scope"),
    ("9:name=systemd:/\n4:memory:/docker/abc\n0::/\n", "/"),  # hybrid
    ("4:memory:/x\n1:cpu:/\n", None),  # v1 only
    ("", None),
])
def test_own_cgroup_is_the_0_line(text: str, path: str | None) -> None:
    assert own_cgroup(text) == path


@pytest.mark.parametrize("path, root, directory", [
    ("/", "/", "/sys/fs/cgroup"),
    ("/a/b", "/", "/sys/fs/cgroup/a/b"),
    ("/ns/a", "/ns", "/sys/fs/cgroup/a"),  # a mount of a cgroup namespace's root
    ("/ns", "/ns", "/sys/fs/cgroup"),
    ("/nsx/a", "/ns", None),  # not under the mounted root
    ("/../outside", "/", None),  # outside this cgroup namespace
    ("relative", "/", None),
])
def test_cgroup_paths_map_into_the_mount(path: str, root: str, directory: str | None) -> None:
    assert cgroup_dir(path, root) == directory


def test_the_cgroup_settings_match_the_systemd_scope() -> None:
    limits = Limits(memory=1024**3, pids=512, cpus=1.5)
    assert settings(limits) == (Setting("memory.max", "1073741824"),
                                Setting("memory.swap.max", "0", optional=True),
                                Setting("pids.max", "512"), Setting("cpu.max", "150000 100000"))
    assert needed(limits) == CONTROLLERS
    assert needed(Limits(pids=5)) == {"pids"} and settings(Limits(timeout=3)) == ()


@pytest.mark.parametrize("cpus, percent", [(1.5, 150), (0.25, 25), (0.001, 1), (8, 800)])
def test_both_ways_give_the_same_cpu_quota(cpus: float, percent: int) -> None:
    assert f"CPUQuota={percent}%" in systemd_scope_argv("systemd-run", Limits(cpus=cpus))
    assert settings(Limits(cpus=cpus)) == (Setting("cpu.max", f"{percent * 1000} 100000"),)


DELEGATED = Probe(path="/sys/fs/cgroup/agents", writable=True,
                  controllers=frozenset({"cpu", "io", "memory", "pids"}),
                  subtree_control=frozenset(), subtree_writable=True, has_processes=False,
                  ancestor="/sys/fs/cgroup", ancestor_writable=True)


@pytest.mark.parametrize("change, enable, why", [
    ({}, ("cpu", "memory", "pids"), ""),
    ({"subtree_control": frozenset({"memory", "pids", "cpu"})}, (), ""),
    ({"subtree_control": frozenset({"memory", "pids", "cpu"}), "has_processes": True,
      "subtree_writable": False}, (), ""),  # the root cgroup: its controllers already on
    ({"subtree_control": frozenset({"pids"}), "has_processes": True}, (),
     "holds processes, so cgroup v2 does not let it enable cpu, memory for child cgroups"),
    ({"systemd_unit": True}, (), "a systemd unit's cgroup, not delegated to you"),
    ({"writable": False}, (), "not writable by you"),
    ({"controllers": frozenset({"pids"})}, (),
     "not given cpu, memory by its parent (its cgroup.controllers: pids)"),
    ({"controllers": frozenset()}, (), "(its cgroup.controllers: none)"),
    ({"subtree_writable": False}, (), "cgroup.subtree_control is not writable by you"),
    ({"ancestor_writable": False}, (),
     "/sys/fs/cgroup/cgroup.procs is not writable by you: moving the sandbox"),
])
def test_which_directory_can_hold_the_sandbox_cgroup(change: dict[str, Any],
                                                     enable: tuple[str, ...], why: str) -> None:
    verdict = decide(DELEGATED._replace(**change), CONTROLLERS)
    assert verdict.enable == enable
    assert why in verdict.why_not and bool(why) == bool(verdict.why_not)
    assert verdict.path == ("" if why else DELEGATED.path)


def test_only_the_asked_controllers_are_needed_at_launch() -> None:
    probe = DELEGATED._replace(controllers=frozenset({"pids"}))
    assert decide(probe, {"pids"}) == Parent(DELEGATED.path, ("pids",))


# --- cgroup v2: the side effects, on a fake tree ------------------------------------------------

class FakeHost:
    """/proc/self and /sys/fs/cgroup as plain files under a temporary root."""

    def __init__(self, root: Path, own: str = "/agents/shell", mountinfo: str = UNIFIED) -> None:
        self.root = root
        self.mount = root / "sys/fs/cgroup"
        (root / "proc/self").mkdir(parents=True)
        (root / "proc/self/mountinfo").write_text(mountinfo)
        (root / "proc/self/cgroup").write_text(f"0::{own}\n")
        self.cgroup("/", controllers="cpu io memory pids", subtree="cpu memory pids",
                    procs="1\n")
        self.cgroup("/agents", controllers="cpu memory pids")
        self.cgroup("/agents/shell", controllers="cpu memory pids", procs=f"{os.getpid()}\n")

    def cgroup(self, path: str, controllers: str = "", subtree: str = "",
               procs: str = "") -> Path:
        d = self.mount / path.lstrip("/")
        d.mkdir(parents=True, exist_ok=True)
        for name, text in (("controllers", controllers), ("subtree_control", subtree),
                           ("procs", procs)):
            (d / f"cgroup.{name}").write_text(text)
        return d

    def find(self, **environ: str) -> Parent:
        return find_parent(environ, root=str(self.root))


@pytest.fixture
def host(tmp_path: Path) -> FakeHost:
    return FakeHost(tmp_path)


def test_the_parent_of_a_busy_own_cgroup_is_used(host: FakeHost) -> None:
    assert host.find() == Parent(str(host.mount / "agents"), ("cpu", "memory", "pids"))


def test_every_candidate_says_why_it_cannot_be_used(host: FakeHost) -> None:
    (host.mount / "agents/cgroup.procs").write_text("77\n")
    why = host.find().why_not
    assert f"{host.mount}/agents/shell holds processes" in why
    assert f"{host.mount}/agents holds processes" in why


def test_a_systemd_unit_is_left_to_systemd(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, own="/user.slice/app.slice/term.scope")
    host.cgroup("/user.slice/app.slice", controllers="cpu memory pids")
    host.cgroup("/user.slice/app.slice/term.scope", controllers="cpu memory pids", procs="9\n")
    why = host.find().why_not
    assert "app.slice is a systemd unit's cgroup, not delegated to you" in why
    named = host.find(AGENT_SANDBOX_CGROUP_PARENT="/sys/fs/cgroup/user.slice/app.slice")
    assert named.path == str(host.mount / "user.slice/app.slice")  # you said it is yours


def test_a_named_parent_is_the_only_one_tried(host: FakeHost) -> None:
    host.cgroup("/mine", controllers="cpu memory pids", subtree="cpu memory pids")
    assert host.find(AGENT_SANDBOX_CGROUP_PARENT="/sys/fs/cgroup/mine") == \
        Parent(str(host.mount / "mine"))
    why = host.find(AGENT_SANDBOX_CGROUP_PARENT="/sys/fs/cgroup/nothing").why_not
    assert why == f"{host.mount}/nothing is not a cgroup v2 directory you can read"


@pytest.mark.parametrize("value", ["/sys/fs/cgroup/agents/../agents", "sys/fs/cgroup/agents",
                                   "/sys/fs/cgroup/agents/", "/tmp/agents", "/sys/fs/cgroupx",
                                   "/sys/fs/cgroup/link"])
def test_a_named_parent_must_be_a_plain_path_in_the_mount(host: FakeHost, value: str) -> None:
    (host.mount / "link").symlink_to(host.mount / "agents")
    why = host.find(AGENT_SANDBOX_CGROUP_PARENT=value).why_not
    assert why.startswith(f"AGENT_SANDBOX_CGROUP_PARENT={value}: not a directory under")


def test_nothing_is_found_without_a_unified_hierarchy(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, mountinfo=HYBRID)
    assert host.find().why_not == NOT_UNIFIED
    assert FakeHost(tmp_path / "ns", own="/../elsewhere").find().why_not == \
        "your cgroup (/../elsewhere) is not visible in /sys/fs/cgroup"


def _fake_kernel(monkeypatch: pytest.MonkeyPatch, files: tuple[str, ...]) -> None:
    """mkdir in cgroupfs makes the interface files; here, empty plain files."""
    def make(parent_fd: int, name: str) -> None:
        os.mkdir(name, dir_fd=parent_fd)
        for file in files:
            os.close(os.open(f"{name}/{file}", os.O_CREAT | os.O_WRONLY, dir_fd=parent_fd))

    monkeypatch.setattr(_cgroup, "_make_cgroup", make)


def test_the_sandbox_cgroup_is_made_limited_filled_and_removed(
        host: FakeHost, monkeypatch: pytest.MonkeyPatch) -> None:
    # No memory.swap.max: swap accounting is off, so it is skipped.
    _fake_kernel(monkeypatch, ("cgroup.procs", "memory.max", "pids.max", "cpu.max"))
    limits = Limits(memory=256 * 1024**2, pids=64, cpus=0.5)
    with sandbox_cgroup(limits, {}, "42-abc", root=str(host.root)) as cgroup:
        made = host.mount / "agents/agent-sandbox-42-abc"
        assert cgroup.path == str(made)
        assert (host.mount / "agents/cgroup.subtree_control").read_text() == \
            "+cpu +memory +pids"
        assert {f.name: f.read_text() for f in made.iterdir()} == {
            "cgroup.procs": "", "memory.max": "268435456", "pids.max": "64",
            "cpu.max": "50000 100000"}
        add_process(cgroup, 4242)
        assert (made / "cgroup.procs").read_text() == "4242"
        for f in made.iterdir():  # what rmdir of an empty cgroup looks like on a plain fs
            f.unlink()
    assert not made.exists()


def test_a_cgroup_that_cannot_be_removed_is_left_with_a_warning(
        host: FakeHost, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_kernel(monkeypatch, ("cgroup.procs", "pids.max"))
    with sandbox_cgroup(Limits(pids=8), {}, "s", root=str(host.root)):
        pass
    made = host.mount / "agents/agent-sandbox-s"
    assert sorted(f.name for f in made.iterdir()) == ["cgroup.procs", "pids.max"]  # rmdir only
    assert f"warning: cannot remove the cgroup {made}" in capsys.readouterr().err


def test_a_missing_interface_file_refuses_the_launch(
        host: FakeHost, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_kernel(monkeypatch, ("cgroup.procs",))
    with pytest.raises(SandboxUnavailable, match=r"agent-sandbox-s/pids.max does not exist"), \
            sandbox_cgroup(Limits(pids=8), {}, "s", root=str(host.root)):
        pytest.fail("the sandbox must not start")


def test_an_existing_name_is_never_followed_or_removed(
        host: FakeHost, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_kernel(monkeypatch, ())
    target = tmp_path / "victim"
    target.mkdir()
    (host.mount / "agents/agent-sandbox-s").symlink_to(target)
    with pytest.raises(SandboxUnavailable, match=r"cannot make the cgroup .*: File exists"), \
            sandbox_cgroup(Limits(pids=8), {}, "s", root=str(host.root)):
        pytest.fail("the sandbox must not start")
    assert target.is_dir() and (host.mount / "agents/agent-sandbox-s").is_symlink()


def test_an_unusable_parent_refuses_with_the_reason_and_the_fix(
        host: FakeHost) -> None:
    with pytest.raises(SandboxUnavailable) as caught, \
            sandbox_cgroup(Limits(pids=8), {"AGENT_SANDBOX_CGROUP_PARENT": "/sys/fs/cgroup/no"},
                           "s", root=str(host.root)):
        pytest.fail("the sandbox must not start")
    assert caught.value.message.startswith("no delegated cgroup for the limits: ")
    assert caught.value.fix is not None and "AGENT_SANDBOX_CGROUP_PARENT" in caught.value.fix


# --- which way: delegated cgroup, else systemd scope, else refuse -------------------------------

@pytest.mark.parametrize("parent, environ, systemd, way", [
    (Parent("/sys/fs/cgroup/a"), {}, ("/usr/bin/systemd-run", None),
     CgroupWay(parent="/sys/fs/cgroup/a")),
    (Parent(why_not="busy"), {}, ("/usr/bin/systemd-run", None),
     CgroupWay(systemd_run="/usr/bin/systemd-run")),
    (Parent(why_not="busy"), {}, ("", "no user manager"),
     CgroupWay(why_not="no delegated cgroup (busy) and no systemd scope (no user manager)")),
    (Parent(why_not=NOT_UNIFIED), {}, ("/usr/bin/systemd-run", None),
     CgroupWay(why_not=NOT_UNIFIED)),
    # A directory you named is not silently replaced by another way.
    (Parent(why_not="broken"), {"AGENT_SANDBOX_CGROUP_PARENT": "/sys/fs/cgroup/x"},
     ("/usr/bin/systemd-run", None), CgroupWay(why_not="broken")),
])
def test_the_delegated_cgroup_comes_first_then_systemd(
        monkeypatch: pytest.MonkeyPatch, parent: Parent, environ: dict[str, str],
        systemd: tuple[str, str | None], way: CgroupWay) -> None:
    monkeypatch.setattr(_cgroup, "find_parent", lambda _environ: parent)
    monkeypatch.setattr(_cgroup, "_systemd_scope", lambda _environ: systemd)
    assert cgroup_way(environ) == way


# --- default caps: memory and pids not given ---------------------------------------------

_ALL_UNSET = {"memory": None, "pids": None, "cpus": None, "timeout": None}


def _resolved(way: CgroupWay, raw: dict[str, str | None] | None = None,
              root_caller: bool = False) -> dict[str, Any]:
    from agent_sandbox._policy.request import _limits

    return _limits({**_ALL_UNSET, **(raw or {})}, False, {}, lambda _e: way, root_caller)


def test_default_caps_where_a_delegated_cgroup_works() -> None:
    got = _resolved(CgroupWay(parent="/sys/fs/cgroup/mine"))
    assert got["cgroup_parent"] == "/sys/fs/cgroup/mine"
    assert got["limits"].memory == default_memory() > 0
    assert got["limits"].pids == DEFAULT_PIDS and got["limits"].uncapped == ""
    # As root too: the launcher moves the sandbox into the cgroup itself.
    assert _resolved(CgroupWay(parent="/x"), root_caller=True)["limits"].pids == DEFAULT_PIDS


def test_default_caps_in_a_systemd_scope_but_not_for_a_root_caller() -> None:
    got = _resolved(CgroupWay(systemd_run="/usr/bin/systemd-run"))
    assert got["systemd_run"] and got["limits"].memory == default_memory()
    rooted = _resolved(CgroupWay(systemd_run="/usr/bin/systemd-run"), root_caller=True)
    assert "systemd_run" not in rooted and rooted["limits"].cgroup is False
    assert "root caller" in rooted["limits"].uncapped


def test_no_way_leaves_memory_uncapped_and_says_why() -> None:
    got = _resolved(CgroupWay(why_not=NOT_UNIFIED))
    assert got == {"limits": Limits(uncapped=NOT_UNIFIED)}


@pytest.mark.parametrize("way", [CgroupWay(parent="/x"), CgroupWay(why_not=NOT_UNIFIED)])
def test_none_turns_a_default_cap_off_and_the_note_with_it(way: CgroupWay) -> None:
    got = _resolved(way, {"memory": "none", "pids": "None"})["limits"]
    assert got.memory is None and got.pids is None and got.uncapped == ""
    only_memory_off = _resolved(way, {"memory": "none"})["limits"]
    assert only_memory_off.uncapped == "" and only_memory_off.memory is None


def test_given_values_win_over_the_defaults() -> None:
    got = _resolved(CgroupWay(parent="/x"), {"memory": "1G", "pids": "64"})["limits"]
    assert (got.memory, got.pids) == (1024**3, 64)


def test_no_probe_without_limit_keys() -> None:
    """explain resolves no limit: no cgroup is looked for, no default is set."""
    from agent_sandbox._policy.request import _limits

    def refuse(_environ: object) -> CgroupWay:
        raise AssertionError("probed")

    assert _limits({}, False, {}, refuse, False) == {"limits": Limits()}


def test_none_is_only_for_the_limits_capped_by_default() -> None:
    with pytest.raises(UsageError, match="or none for no cap"):
        parse_size("nne", "--memory")
    with pytest.raises(UsageError, match=r"expected a size like 512M, 4G or 1048576$"):
        parse_size("none", "--tmp-size")
    assert is_no_cap("none", "pids") and not is_no_cap("none", "cpus")
