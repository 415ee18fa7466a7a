"""`python -m hive_project.celery_worker -Q … -n … -c …`: a hive worker without Celery's command line.

`celery -A hive_project worker` first imports Celery's whole command-line umbrella: every
subcommand (`amqp` and `shell` bring click-repl, prompt_toolkit and pygments) and every installed
plugin (Flower, with Tornado and prometheus_client): about 300 modules and 14 MB that a worker
never uses, held by the main process and copied into every prefork child. This runs Celery's own
`worker` command (the same options, the same `CELERY_WORKER_*` variables) under the hive's app,
which is all the umbrella does for `worker`. `celery -A hive_project worker` still works;
`hive_project.launch.worker_argv`, the Kubernetes manifests and the Compose files start this.
"""

from __future__ import annotations

import sys

from hive_project import launch

# Before the settings load: the worker's app list and admin follow this (hive_project.settings).
launch.mark_worker_process()


def main(argv: list[str] | None = None) -> None:
    from celery import maybe_patch_concurrency

    maybe_patch_concurrency()  # as `python -m celery` does first (-P eventlet/gevent)

    # Celery's command module colours JSON output with Pygments when it can import it (for
    # `celery inspect` and the like); a worker prints none, and Pygments' lexer table alone is
    # 1.5 MB per process. Hidden for that import only (Celery's documented fallback when Pygments
    # is missing), so anything later may still import it.
    hidden = "pygments" not in sys.modules
    if hidden:
        sys.modules["pygments"] = None  # type: ignore[assignment]
    try:
        from celery.bin.base import CLIContext, consume_preload_options  # type: ignore[attr-defined]  # (not in the stubs)
        from celery.bin.worker import worker
    finally:
        if hidden:
            del sys.modules["pygments"]

    from hive_project.celery import app

    # What Celery's umbrella command does before it hands over to `worker`.
    worker.params.extend(app.user_options.get("worker", []))
    preload = app.user_options.get("preload", ())
    if preload:
        worker.params.extend(preload)
        worker.callback = consume_preload_options(worker.callback)
    context = CLIContext(app=app, no_color=False, workdir=None, quiet=False)
    worker.main(
        args=sys.argv[1:] if argv is None else argv,
        prog_name="celery -A hive_project worker",
        obj=context,
        auto_envvar_prefix="CELERY_WORKER",
    )


if __name__ == "__main__":
    main()
