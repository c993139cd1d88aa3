"""The ingest stage: Alertmanager and Grafana webhook bodies become a Notification.

Pure: it takes bytes and returns receiver.model dataclasses, or raises PayloadError
naming what and where. Webhook auth (tokens, basic auth, Grafana's HMAC) lives here too.
"""
