"""Django's PostgreSQL backend, with a health check that a connection proven moments ago skips
(hive_project.postgresql.base)."""
