"""dingtalk-receiver: page people through DingTalk work notifications from Alertmanager and Grafana."""

__version__ = "0.1.0"
