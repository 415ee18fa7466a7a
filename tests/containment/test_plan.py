"""containment.plan, the start checks and the argv it builds (pure functions; users from passwd)."""

from __future__ import annotations

import pwd
import shutil
import tempfile
from pathlib import Path

import pytest

from agents.runners.containment import (
    ContainmentError,
    command,
    environment,
    lookup_user,
    plan,
    root_problem,
    sandbox_argv,
    start_check,
    which,
)

NOBODY = pwd.getpwnam("nobody")
FIX = "set runner.run_as to an unprivileged user or runner.sandbox: bubblewrap"


def test_plan_as_root_with_run_as_switches_to_that_user_with_its_groups():
    planned = plan({"run_as": "nobody"}, pool="backend", euid=0, setpriv="/usr/bin/setpriv")

    assert (planned.uid, planned.user.name, planned.as_root, planned.sandbox) == (NOBODY.pw_uid, "nobody", False, False)
    argv = command(["/bin/echo", "{prompt}"], planned, workspace=Path("/w"), setpriv="/usr/bin/setpriv")
    assert argv == [
        "/usr/bin/setpriv",
        f"--reuid={NOBODY.pw_uid}",
        f"--regid={NOBODY.pw_gid}",
        "--init-groups",
        "--pdeathsig",
        "KILL",
        "--",
        "/bin/echo",
        "{prompt}",
    ]


def test_command_with_the_helper_switches_users_in_it_and_names_the_worker_as_parent():
    planned = plan({"run_as": "nobody"}, pool="backend", euid=0, setpriv="/usr/bin/setpriv")
    groups = ",".join(map(str, planned.user.groups))

    argv = command(
        ["/bin/echo", "x"], planned, workspace=Path("/w"), setpriv="/usr/bin/setpriv", helper="/h", parent=42
    )
    sandboxed = plan({"sandbox": "bubblewrap"}, pool="backend", euid=0, bwrap="/usr/bin/bwrap")
    in_sandbox = command(["/bin/echo", "x"], sandboxed, workspace=Path("/w"), setpriv=None, helper="/h", parent=42)

    assert planned.user.groups and NOBODY.pw_gid in planned.user.groups
    assert argv == ["/h", f"--user={NOBODY.pw_uid}:{NOBODY.pw_gid}:{groups}", "42", "/bin/echo", "x"]
    assert in_sandbox[:3] == ["/h", "42", "/usr/bin/bwrap"] and in_sandbox[-2:] == ["/bin/echo", "x"]


def test_plan_system_runner_user_applies_when_the_pool_names_none():
    planned = plan({}, pool="backend", default_user="nobody", euid=0)
    assert planned.user.name == "nobody"
    assert plan({"run_as": "root"}, pool="backend", default_user="nobody", euid=0).as_root


def test_plan_not_root_cannot_switch_users_and_says_how_to_fix_it():
    with pytest.raises(ContainmentError) as err:
        plan({"run_as": "nobody"}, pool="backend", euid=4321)
    message = str(err.value)
    assert message == (
        "pool backend: runner.run_as is 'nobody', but this worker runs as '4321' and cannot switch users; "
        "run the worker as root, or set runner.run_as to '4321' or remove it"
    )
    assert "\n" not in message


def test_plan_not_root_running_as_the_named_user_needs_no_switch():
    planned = plan({"run_as": "nobody"}, pool="backend", euid=NOBODY.pw_uid)
    assert planned.user is None and planned.uid == NOBODY.pw_uid and not planned.active


def test_plan_unknown_user_is_refused_naming_the_key():
    with pytest.raises(ContainmentError, match="pool ios: system.runner_user is 'no-such-user-x', but there is no"):
        plan({}, pool="ios", default_user="no-such-user-x", euid=0)


def test_plan_sandbox_without_bwrap_is_refused():
    with pytest.raises(ContainmentError, match="bwrap is not installed \\(apt-get install bubblewrap\\)"):
        plan({"sandbox": "bubblewrap"}, pool="backend", euid=0, bwrap=None)


def test_root_problem_only_for_root_without_a_sandbox():
    assert root_problem(plan({}, pool="backend", euid=0), pool="backend") == (
        f"pool backend: its runner would run agent programs and command tasks as root without a sandbox; {FIX}"
    )
    assert root_problem(plan({"sandbox": "bubblewrap"}, pool="b", euid=0, bwrap="/usr/bin/bwrap"), pool="b") is None
    assert root_problem(plan({"run_as": "nobody"}, pool="b", euid=0), pool="b") is None
    assert root_problem(plan({}, pool="b", euid=NOBODY.pw_uid), pool="b") is None


def test_start_check_refuses_in_production_and_warns_in_development():
    runners = {"backend": {}, "ios": {"run_as": "nobody"}}
    refusals, warnings = start_check(runners, default_user=None, production=True, euid=0)
    assert refusals == [
        f"pool backend: its runner would run agent programs and command tasks as root without a sandbox; {FIX}"
    ]
    refusals, warnings = start_check(runners, default_user=None, production=False, euid=0)
    assert refusals == [] and warnings == [
        f"pool backend: its runner would run agent programs and command tasks as root without a sandbox; {FIX}"
    ]


def test_sandbox_argv_covers_private_paths_before_binding_the_workspace_and_can_cut_the_network(tmp_path):
    var = tmp_path / "var"
    (var / "workspaces" / "t" / "1").mkdir(parents=True)
    config = tmp_path / "hive.yaml"
    config.write_text("system: {}\n")
    secret_in_var = var / "secret_key"
    secret_in_var.write_text("x")
    planned = plan(
        {"sandbox": "bubblewrap", "sandbox_network": False},
        pool="b",
        euid=0,
        bwrap="/usr/bin/bwrap",
        hidden=[var, config, secret_in_var, tmp_path / "absent"],
    )
    workspace = var / "workspaces" / "t" / "1"

    argv = sandbox_argv(["/bin/true"], planned, workspace=workspace)

    assert argv[:10] == ["/usr/bin/bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    assert {"--unshare-pid", "--die-with-parent", "--unshare-net"} <= set(argv)
    assert "--new-session" not in argv  # the program stays in the runner's process group
    text = " ".join(argv)
    assert f"--tmpfs {var} " in text and f"--ro-bind /dev/null {config} " in text
    assert str(secret_in_var) not in text and "absent" not in text  # covered by var/; nothing to cover
    assert text.index(f"--tmpfs {var} ") < text.index(f"--bind {workspace} {workspace}")
    assert argv[-4:] == ["--chdir", str(workspace), "--", "/bin/true"]
    with_network = plan({"sandbox": "bubblewrap"}, pool="b", euid=0, bwrap="/usr/bin/bwrap")
    assert "--unshare-net" not in sandbox_argv(["/bin/true"], with_network, workspace=workspace)


def test_environment_of_a_switched_user_names_it_and_drops_the_hives_django_settings(tmp_path):
    planned = plan({"run_as": "nobody", "env": {"HOME": "/srv/agent"}}, pool="b", euid=0)
    # the runner's own env is already in (execute.environment applies it): containment keeps it
    env = environment(
        {"DJANGO_SETTINGS_MODULE": "hive_project.settings", "HOME": "/srv/agent", "USER": "root", "PATH": "/usr/bin"},
        planned,
        workspace=tmp_path,
    )
    assert env == {"HOME": "/srv/agent", "USER": "nobody", "LOGNAME": "nobody", "PATH": "/usr/bin"}
    uncontained = {"DJANGO_SETTINGS_MODULE": "hive_project.settings", "HOME": "/root"}
    assert environment(uncontained, None, workspace=tmp_path) == uncontained


def test_environment_home_is_the_workspace_when_the_user_has_no_home_directory(tmp_path):
    planned = plan({"run_as": "nobody", "sandbox": "bubblewrap"}, pool="b", euid=0, bwrap="/usr/bin/bwrap")
    env = environment({"HOME": "/root", "TMPDIR": "/var/lib/hive/tmp"}, planned, workspace=tmp_path)
    assert env["HOME"] == str(tmp_path)  # nobody's home is /nonexistent
    assert env["TMPDIR"] == "/tmp"  # the sandbox's private /tmp


def test_which_finds_the_copy_the_runner_user_can_run():
    root = Path(tempfile.mkdtemp(prefix="hive-which-"))
    try:
        root.chmod(0o755)
        closed, open_ = root / "closed", root / "open"
        for directory, mode in ((closed, 0o700), (open_, 0o755)):
            directory.mkdir()
            (directory / "agent").write_text("#!/bin/sh\n")
            (directory / "agent").chmod(0o755)
            directory.chmod(mode)
        nobody = lookup_user("nobody")
        path = f"{closed}:{open_}"

        assert which("agent", path=path, user=nobody) == str(open_ / "agent")
        assert which("agent", path=str(closed), user=nobody) is None
        (open_ / "agent").chmod(0o744)  # not executable by others
        assert which("agent", path=path, user=nobody) is None
    finally:
        shutil.rmtree(root)


@pytest.mark.parametrize(
    ("runner", "line"),
    [
        ("sandbox: firejail", "agents.solo.runner.sandbox = 'firejail': expected one of none, bubblewrap"),
        (
            "run_as: 'root; rm -rf /'",
            "agents.solo.runner.run_as = 'root; rm -rf /': expected a user name of this machine",
        ),
    ],
)
def test_config_refuses_a_bad_containment_value_naming_the_key(tmp_path, runner, line):
    from hive_project.config import ConfigError, load_config

    path = tmp_path / "hive.yaml"
    path.write_text(f"agents:\n  solo:\n    capabilities: [python]\n    runner: {{argv: [echo], {runner}}}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert str(err.value).startswith(line)
