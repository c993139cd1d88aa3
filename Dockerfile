FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RECEIVER_LISTEN=0.0.0.0:8080 \
    RECEIVER_DATA_DIR=/data \
    RECEIVER_ROUTING=/etc/dingtalk-receiver/routing.yaml \
    RECEIVER_TEMPLATES=/etc/dingtalk-receiver/templates

WORKDIR /app
COPY pyproject.toml README.md ./
COPY receiver ./receiver
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home-dir /data receiver \
    && mkdir -p /data /etc/dingtalk-receiver \
    && chown receiver /data
COPY routing.yaml /etc/dingtalk-receiver/routing.yaml
COPY templates /etc/dingtalk-receiver/templates

USER receiver
VOLUME ["/data"]
EXPOSE 8080
# Liveness only (/readyz also needs the delivery worker); the port follows RECEIVER_LISTEN.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('RECEIVER_LISTEN', ':8080').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2)"]
# SIGTERM reaches the gunicorn arbiter (exec form, PID 1): it drains the workers,
# then stops the delivery worker; whatever is queued stays in /data. That can take
# longer than Docker's default 10 s: use `docker stop -t 60` / compose stop_grace_period.
STOPSIGNAL SIGTERM
ENTRYPOINT ["dingtalk-receiver"]
CMD ["serve"]
