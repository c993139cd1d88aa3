"""The HTTP shell: the Flask app (webhooks, health, metrics, reload) and the gunicorn server."""
