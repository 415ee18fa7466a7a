"""The Celery application: one routed queue per agent pool, plus hive.control for beat's jobs."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hive_project.settings")
# Celery's Django fixup runs Django's system checks when a worker starts, which imports the URL
# configuration and with it every view, DRF and the API schema: memory a worker never uses. The
# hive registers no checks of its own; `manage.py check` (make lint, CI) runs Django's.
os.environ.setdefault("CELERY_SKIP_CHECKS", "1")

app = Celery("hive_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"])
