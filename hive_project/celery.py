"""The Celery application: one routed queue per agent pool, plus hive.control for beat's jobs."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hive_project.settings")

app = Celery("hive_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"])
