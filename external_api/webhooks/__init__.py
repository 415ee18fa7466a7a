"""Signed webhooks: GitHub (`/webhooks/github/`), Slack (`/webhooks/slack/`) and custom senders
with an API key (`/webhooks/custom/`). Each verified delivery is stored once and may become a task."""
