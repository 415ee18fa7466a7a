"""`/webhooks/<kind>/` and `/webhooks/<kind>/<slug>/`, with or without the trailing slash (senders
post to the URL as it is written; a redirect would lose the body)."""

from django.urls import re_path

from external_api.webhooks.custom import custom_webhook
from external_api.webhooks.github import github_webhook
from external_api.webhooks.slack import slack_webhook

SLUG = r"(?P<slug>[-\w]+)"

urlpatterns = [
    re_path(r"^github/?$", github_webhook, name="webhook-github"),
    re_path(rf"^github/{SLUG}/?$", github_webhook, name="webhook-github-source"),
    re_path(r"^slack/?$", slack_webhook, name="webhook-slack"),
    re_path(rf"^slack/{SLUG}/?$", slack_webhook, name="webhook-slack-source"),
    re_path(r"^custom/?$", custom_webhook, name="webhook-custom"),
    re_path(rf"^custom/{SLUG}/?$", custom_webhook, name="webhook-custom-source"),
]
