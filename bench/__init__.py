"""`hive bench`: the hive against plain Celery on one machine, with real servers and workers.

world.py     the run's own var directory, Redis, database and processes
raw_celery   the peer: a tiny Celery app without Django
results_celery  the second peer: that app storing each result with django-celery-results in the same database
sql_count    SQL statements per task, counted in the bench's workers (`celery worker -I`)
submit_profile  `task_submit` alone: CPU and SQL statements per call, a cProfile (`python -m bench.submit_profile`)
request_profile one front-door request through the WSGI app in-process: CPU, statements, A/B switch (`python -m bench.request_profile`)
scenarios    what is measured (throughput, latency, memory; 3–5 wait for the API and the stream)
profiling    py-spy profiles of the worker and the submitting process (`--profile`)
report       the table, var/bench/*.json and docs/benchmarks.md
"""
