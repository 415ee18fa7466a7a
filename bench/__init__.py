"""`hive bench`: the hive against plain Celery on one machine, with real servers and workers.

world.py     the run's own var directory, Redis, database and processes
raw_celery   the peer: a tiny Celery app without Django
scenarios    what is measured (throughput, latency, memory; 3–5 wait for the API and the stream)
profiling    py-spy profiles of the worker and the submitting process (`--profile`)
report       the table, var/bench/*.json and docs/benchmarks.md
"""
