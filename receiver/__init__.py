"""dingtalk-receiver: page people on DingTalk from Alertmanager and Grafana alerts."""

__version__ = "0.1.0"
