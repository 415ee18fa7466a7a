from django.contrib import admin
from django.urls import path

from hive_project import health

admin.site.site_header = "Agent Hive"
admin.site.site_title = "Agent Hive"

urlpatterns = [
    path("health", health.health, name="health"),
    path("ready", health.ready, name="ready"),
    path("admin/", admin.site.urls),
]
