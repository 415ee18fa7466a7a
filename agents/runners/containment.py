"""Containment of what a pool's runner starts: the user it runs as, and the bubblewrap sandbox.

What a runner starts is untrusted (a coding agent acting on a prompt, or a team's own command),
so it never runs with the hive's rights:

- `runner.run_as` (or `system.runner_user`) names an unprivileged user; a root worker starts the
  program as that user, with its groups (through `hive-pdeathsig --user`, else `setpriv --reuid
  --regid --init-groups`). A worker that is not root cannot switch users: there run_as must be
  the worker's own user, or unset.
- `runner.sandbox: bubblewrap` starts it in `bwrap`: the root filesystem read-only, its workspace
  the only writable place besides a private /tmp, the hive's private paths (var/, the
  configuration file, secret files) covered, its own PID namespace with a fresh /proc, killed
  with its worker; `runner.sandbox_network: false` takes the network away too.

The program stays in the process group the runner made for it (no `--new-session`), so the
timeout, cancel and process-tree kill of `agents.runners.process` reach everything inside.

Pure: no Django. `plan` reads the passwd database and which tools are installed; the rest builds
argv and environments from data.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

BWRAP = shutil.which("bwrap")
SETPRIV = shutil.which("setpriv")
# The hive's Django settings need its secrets and its database; a contained program has neither,
# so it does not get the variable that would make a Python program load them.
DROPPED_ENV = ("DJANGO_SETTINGS_MODULE",)
FIX_ROOT = "set runner.run_as to an unprivileged user or runner.sandbox: bubblewrap"


class ContainmentError(Exception):
    """A pool's runner cannot be contained as configured. The message is one line that says how to fix it."""


@dataclass(frozen=True)
class RunnerUser:
    name: str
    uid: int
    gid: int
    home: str
    groups: tuple[int, ...] = ()  # its supplementary groups, as initgroups(3) would set them


def lookup_user(name: str) -> RunnerUser:
    """The passwd entry of `name`; ContainmentError when this machine has no such user."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise ContainmentError(f"there is no user {name!r} on this machine") from None
    groups = tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))
    return RunnerUser(name=entry.pw_name, uid=entry.pw_uid, gid=entry.pw_gid, home=entry.pw_dir, groups=groups)


@dataclass(frozen=True)
class Containment:
    """How one attempt's program is started.

    `uid` is who the program runs as; `user` is set only when that means switching from the
    worker's user. `hidden_dirs` are covered with an empty tmpfs in the sandbox and
    `hidden_files` with /dev/null. `explicit_env` names the variables the pool's runner.env sets,
    which containment leaves as they are.
    """

    uid: int
    user: RunnerUser | None = None
    sandbox: bool = False
    network: bool = True
    hidden_dirs: tuple[str, ...] = ()
    hidden_files: tuple[str, ...] = ()
    explicit_env: frozenset[str] = frozenset()
    bwrap: str | None = None
    setpriv: str | None = None

    @property
    def as_root(self) -> bool:
        return self.uid == 0

    @property
    def active(self) -> bool:
        return self.user is not None or self.sandbox


def sandboxed(runner: Mapping[str, object] | None) -> bool:
    """Does this runner configuration start its program in the bubblewrap sandbox?"""
    return runner is not None and runner.get("sandbox") == "bubblewrap"


def plan(
    runner: Mapping[str, object],
    *,
    pool: str,
    default_user: str | None = None,
    hidden: Sequence[str | os.PathLike[str]] = (),
    euid: int | None = None,
    bwrap: str | None = BWRAP,
    setpriv: str | None = SETPRIV,
) -> Containment:
    """The containment of `pool`'s runner (its configuration as a dict: run_as, sandbox,
    sandbox_network, env) on this worker, or ContainmentError saying in one line why it cannot be.

    `default_user` (system.runner_user) applies when the pool names no run_as. `hidden` are the
    hive's private paths; those that exist are covered in the sandbox. `euid` is the worker's
    (default: this process's).
    """
    euid = os.geteuid() if euid is None else euid
    key = "runner.run_as" if runner.get("run_as") else "system.runner_user"
    name = str(runner.get("run_as") or default_user or "") or None
    user: RunnerUser | None = None
    uid = euid
    if name is not None:
        try:
            wanted = lookup_user(name)
        except ContainmentError as exc:
            raise ContainmentError(f"pool {pool}: {key} is {name!r}, but {exc}; create it or change {key}") from None
        if wanted.uid != euid:
            if euid != 0:
                me = _user_name(euid)
                raise ContainmentError(
                    f"pool {pool}: {key} is {name!r}, but this worker runs as {me!r} and cannot switch users; "
                    f"run the worker as root, or set {key} to {me!r} or remove it"
                )
            if setpriv is None:
                raise ContainmentError(f"pool {pool}: {key} needs setpriv (util-linux) to switch users")
            user = wanted
        uid = wanted.uid
    sandbox = sandboxed(runner)
    if sandbox and bwrap is None:
        raise ContainmentError(
            f"pool {pool}: runner.sandbox is bubblewrap, but bwrap is not installed (apt-get install bubblewrap)"
        )
    dirs, files = _existing(hidden) if sandbox else ((), ())
    env = runner.get("env")
    return Containment(
        uid=uid,
        user=user,
        sandbox=sandbox,
        network=bool(runner.get("sandbox_network", True)),
        hidden_dirs=dirs,
        hidden_files=files,
        explicit_env=frozenset(str(k) for k in env) if isinstance(env, Mapping) else frozenset(),
        bwrap=bwrap if sandbox else None,
        setpriv=setpriv,
    )


def root_problem(containment: Containment, *, pool: str) -> str | None:
    """One line when the pool's programs would run as root outside a sandbox (refused in
    production, a warning in development), else None."""
    if containment.as_root and not containment.sandbox:
        return (
            f"pool {pool}: its runner would run agent programs and command tasks as root without a sandbox; {FIX_ROOT}"
        )
    return None


def start_check(
    runners: Mapping[str, Mapping[str, object]],
    *,
    default_user: str | None,
    production: bool,
    euid: int | None = None,
) -> tuple[list[str], list[str]]:
    """What starting these pools (name -> runner configuration) as this user meets: (refusals,
    warnings), one line each. A runner that cannot be contained as configured is refused; one
    that would run programs as root without a sandbox is refused in production and a warning in
    development."""
    refusals: list[str] = []
    warnings: list[str] = []
    for pool, runner in runners.items():
        try:
            planned = plan(runner, pool=pool, default_user=default_user, euid=euid)
        except ContainmentError as exc:
            refusals.append(str(exc))
            continue
        problem = root_problem(planned, pool=pool)
        if problem:
            (refusals if production else warnings).append(problem)
        closed = _closed_program(runner, planned)
        if closed:
            warnings.append(f"pool {pool}: {closed}; its tasks will fail to start")
    return refusals, warnings


def _closed_program(runner: Mapping[str, object], planned: Containment) -> str | None:
    """Why the user a pool switches to cannot run the pool's program (a directory on the way is
    closed to it, as a Python installed under /root is), or None."""
    if planned.user is None:
        return None
    if runner.get("kind") == "python":
        program: str | None = sys.executable
    else:
        argv = runner.get("argv") or []
        program = shutil.which(str(argv[0])) if isinstance(argv, list) and argv else None
    if not program:
        return None  # not installed: the worker says so when a task needs it
    if runner.get("kind") != "python" and which(Path(program).name, path=os.environ.get("PATH"), user=planned.user):
        return None  # the lookup as the runner user finds another copy
    real = Path(os.path.realpath(program))
    for directory in [*reversed(real.parents), real]:
        if not _may_search(directory, planned.user):
            return f"{planned.user.name} cannot run {program} ({directory} is closed to it)"
    return None


def which(program: str, *, path: str | None, user: RunnerUser) -> str | None:
    """`program` looked up in `path` as `user` would: the first candidate the user may reach and
    run (mode bits; ACLs are not consulted). A root worker's PATH often starts with directories
    closed to other users (/root/.pyenv/shims), where a plain lookup would stop."""
    for directory in (path if path is not None else os.defpath).split(os.pathsep):
        candidate = Path(directory or ".") / program
        if candidate.is_file() and runnable_by(candidate, user):
            return str(candidate)
    return None


def runnable_by(program: Path, user: RunnerUser) -> bool:
    """Whether every directory on the way to `program` (and to what its symlinks point at) lets
    `user` pass, and the file lets it execute."""
    real = Path(os.path.realpath(program))
    ways = [*Path(os.path.abspath(program)).parents, *real.parents]
    return all(_may_search(d, user) for d in ways) and _may_search(real, user)


def _may_search(path: Path, user: RunnerUser) -> bool:
    """Whether the mode bits let `user` search (execute) `path`; ACLs are not consulted."""
    try:
        st = path.stat()
    except OSError:
        return False
    groups = {user.gid, *os.getgrouplist(user.name, user.gid)}
    if st.st_uid == user.uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in groups:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def command(
    argv: Sequence[str],
    containment: Containment | None,
    *,
    workspace: Path,
    setpriv: str | None,
    helper: str | None = None,
    parent: int = 0,
) -> list[str]:
    """The argv that starts `argv` (its program already resolved to a path) contained.

    With `helper` (hive-pdeathsig, agents/runners/pdeathsig.c) and the worker's pid as `parent`:
    `hive-pdeathsig [--user=UID:GID:GROUPS] PARENT [bwrap … --] argv`. It switches the user, sets
    the parent-death signal (a change of credentials clears it), checks that PARENT is still its
    parent, then execs. Otherwise `setpriv [--reuid --regid --init-groups] --pdeathsig KILL --
    [bwrap … --] argv`, which does the same but for the check: a worker killed between starting
    setpriv and its prctl leaves the program running. Without either the caller sets the signal.
    """
    program = list(argv)
    if containment is not None and containment.sandbox:
        program = sandbox_argv(program, containment, workspace=workspace)
    user = containment.user if containment is not None else None
    if helper is not None:
        switch = [f"--user={user.uid}:{user.gid}:{','.join(map(str, user.groups))}"] if user is not None else []
        return [helper, *switch, str(parent), *program]
    if setpriv is None:
        return program
    return [setpriv, *credential_options(containment), "--pdeathsig", "KILL", "--", *program]


def credential_options(containment: Containment | None) -> list[str]:
    user = containment.user if containment is not None else None
    if user is None:
        return []
    return [f"--reuid={user.uid}", f"--regid={user.gid}", "--init-groups"]


def sandbox_argv(argv: Sequence[str], containment: Containment, *, workspace: Path) -> list[str]:
    """bwrap's argv around `argv`. Mount order matters: /tmp and the hidden paths first, the
    workspace last, so a workspace inside a hidden directory (var/workspaces) is bound back."""
    ws = os.path.realpath(workspace)
    args = [
        containment.bwrap or "bwrap",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
        "--unshare-pid",
        "--unshare-ipc",
        "--die-with-parent",
    ]
    if not containment.network:
        args.append("--unshare-net")
    for path in sorted(containment.hidden_dirs, key=lambda p: (p.count("/"), p)):
        args += ["--tmpfs", path]
    for path in sorted(containment.hidden_files):
        args += ["--ro-bind", "/dev/null", path]
    args += ["--bind", ws, ws, "--chdir", ws, "--", *argv]
    return args


def environment(env: Mapping[str, str], containment: Containment | None, *, workspace: Path) -> dict[str, str]:
    """The program's environment under `containment`: USER, LOGNAME and HOME of the user it runs
    as (HOME is the workspace when that user has no home directory), TMPDIR=/tmp in the sandbox,
    and no DJANGO_SETTINGS_MODULE. Variables the pool's runner.env sets are kept as they are."""
    result = dict(env)
    if containment is None or not containment.active:
        return result

    def put(name: str, value: str) -> None:
        if name not in containment.explicit_env:
            result[name] = value

    for name in DROPPED_ENV:
        if name not in containment.explicit_env:
            result.pop(name, None)
    if containment.user is not None:
        put("USER", containment.user.name)
        put("LOGNAME", containment.user.name)
        put("HOME", containment.user.home if os.path.isdir(containment.user.home) else str(workspace))
    if containment.sandbox:
        put("TMPDIR", "/tmp")
    return result


def _existing(paths: Sequence[str | os.PathLike[str]]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    dirs: list[str] = []
    files: list[str] = []
    for raw in paths:
        path = os.path.realpath(os.fspath(raw))
        if path == "/" or path in dirs or path in files:
            continue
        if os.path.isdir(path):
            dirs.append(path)
        elif os.path.exists(path):
            files.append(path)
    # a file inside a covered directory is covered already
    files = [f for f in files if not any(f.startswith(d + os.sep) for d in dirs)]
    return tuple(dirs), tuple(files)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
