"""`serve`: gunicorn for the web workers plus the delivery process(es), from one command.

The gunicorn arbiter is the parent. Once it is ready it starts each delivery
process (RECEIVER_DELIVERY_PROCESSES, one by default) and a thread each that
restarts it if it dies. On SIGTERM gunicorn drains its workers, then `on_exit`
stops the delivery processes, each of which finishes the call in flight. Anything
still queued stays in the outbox for the next start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from receiver import metrics
from receiver.delivery import health
from receiver.errors import ConfigError
from receiver.logs import ACCESS_LOG_FORMAT, logconfig_dict
from receiver.routing import loader as config
from receiver.settings import Settings
from receiver.web.app import create_app

log = logging.getLogger(__name__)


class DeliverySupervisor:
    """Runs `dingtalk-receiver deliver` as a child of the arbiter, and restarts it if it dies.

    A plain subprocess, not multiprocessing: gunicorn forks its workers from the
    arbiter, and they must not inherit a multiprocessing child to join at exit.
    The child reads the same environment, so it sees the same settings.
    """

    POLL_S = 1.0
    # A process that dies soon after its start (a crash at boot) is restarted after
    # 1 s, 2 s, 4 s … up to a minute, not every second with a traceback each time.
    RESTART_MIN_S = 1.0
    RESTART_MAX_S = 60.0
    STABLE_S = 60.0  # one that lived this long starts again at RESTART_MIN_S

    def __init__(self, settings: Settings, number: int = 0) -> None:
        self.settings = settings
        self.number = number  # which of RECEIVER_DELIVERY_PROCESSES (`deliver --process`)
        self.process: subprocess.Popen[bytes] | None = None
        self.stopping = threading.Event()
        self._started = 0.0

    def start(self) -> None:
        # A heartbeat left by the last run would make /readyz say ready before this
        # run's delivery process has polled once.
        with contextlib.suppress(FileNotFoundError):
            os.remove(health.heartbeat_path(self.settings.data_dir, self.number))
        self._spawn()
        threading.Thread(target=self._watch, name="delivery-watch", daemon=True).start()

    def _spawn(self) -> None:
        # Its own session: a signal to the terminal's group reaches the arbiter, which
        # stops the workers first and then this process. If the arbiter is killed
        # outright, the worker sees its parent change and exits by itself.
        self.process = subprocess.Popen(self._command(), start_new_session=True)
        self._started = time.monotonic()
        log.info("delivery_process_started pid=%s process=%d", self.process.pid, self.number)

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "receiver", "deliver", "--parent-pid", str(os.getpid()),
                "--process", str(self.number)]  # fmt: skip

    def _watch(self) -> None:
        delay = 0.0
        while not self.stopping.wait(self.POLL_S):
            if self.process is not None and self.process.poll() is not None:
                # No exit code: gunicorn's SIGCHLD handler reaps every child of the
                # arbiter, this one too, so poll() can only tell that it is gone.
                lived = time.monotonic() - self._started
                stable = lived >= self.STABLE_S
                delay = self.RESTART_MIN_S if stable else min(
                    max(delay * 2, self.RESTART_MIN_S), self.RESTART_MAX_S
                )  # fmt: skip
                log.error("delivery_process_died pid=%s process=%d; restarting in %.0fs",
                          self.process.pid, self.number, delay)  # fmt: skip
                if self.stopping.wait(max(delay - self.POLL_S, 0)):
                    break
                self._spawn()

    def stop(self, timeout: float = 30.0) -> None:
        self.terminate()
        self.wait(time.monotonic() + timeout)

    def terminate(self) -> None:
        self.stopping.set()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: finish the call in flight, then exit

    def wait(self, deadline: float) -> None:
        """Wait for it to exit after `terminate`, and kill it at `deadline` (monotonic)."""
        if self.process is not None and self.process.poll() is None:
            try:
                self.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.process.kill()
        log.info("delivery_process_stopped process=%d", self.number)


def start_all(supervisors: list[DeliverySupervisor]) -> None:
    for s in supervisors:
        s.start()


def stop_all(supervisors: list[DeliverySupervisor], timeout: float = 30.0) -> None:
    """Stop the delivery processes together: each finishes its call in flight."""
    for s in supervisors:
        s.terminate()
    deadline = time.monotonic() + timeout
    for s in supervisors:
        s.wait(deadline)


class ReceiverArbiter(Arbiter):  # type: ignore[misc]
    """SIGHUP checks routing.yaml and says so, without restarting the workers.

    gunicorn's own HUP restarts the workers, and a worker that boots on a broken
    file is a paging outage. The workers pick up a changed file by themselves
    (they poll it), so the arbiter only validates it and logs the outcome.
    """

    def handle_hup(self) -> None:
        settings: Settings = self.app.settings
        try:
            config.load(settings.routing)
        except ConfigError as e:
            metrics.config_reloads.labels("failure").inc()
            log.error("config_reload_failed reason=sighup problems=%s",
                      "; ".join(map(str, e.problems)))  # fmt: skip
            return
        log.info("config_checked reason=sighup routing=%s; workers pick it up", settings.routing)


class ReceiverServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.supervisors = [
            DeliverySupervisor(settings, i) for i in range(settings.delivery_processes)
        ]
        super().__init__()

    def load_config(self) -> None:
        supervisors = self.supervisors
        options: dict[str, Any] = {
            "bind": self.settings.listen,
            "workers": self.settings.workers,
            # gevent, with a read deadline per request: receiver.web.worker says why.
            "worker_class": "receiver.web.worker.ReceiverWorker",
            "timeout": 30,
            "graceful_timeout": 20,
            "accesslog": "-",
            "access_log_format": ACCESS_LOG_FORMAT,
            "logger_class": "receiver.web.accesslog.Logger",  # its six atoms, not sixty
            "logconfig_dict": logconfig_dict(self.settings.log_format),
            "when_ready": lambda server: start_all(supervisors),
            "on_exit": lambda server: stop_all(supervisors),
            "child_exit": lambda server, worker: metrics.mark_process_dead(worker.pid),
        }
        if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 24
            options["control_socket_disable"] = True
        for key, value in options.items():
            self.cfg.set(key, value)

    def run(self) -> None:
        ReceiverArbiter(self).run()

    def load(self) -> Flask:
        return create_app(self.settings, serving=True)


def auth_summary(settings: Settings) -> str:
    """Which auth the webhooks and admin endpoints want, for the start-up log."""
    kinds = [k for k, on in (("bearer token", settings.webhook_token),
                             ("basic auth", settings.basic_auth)) if on]  # fmt: skip
    webhook = " or ".join(kinds) or "none (anyone who reaches the port may post)"
    hmac = "on" if settings.grafana_hmac_secret else "off"
    admin = "token" if settings.admin_token else "none"
    return f"auth webhooks={webhook}; grafana_signature={hmac}; reload={admin}"


def serve(settings: Settings) -> None:
    log.info("%s", auth_summary(settings))
    if settings.dry_run:
        log.warning(
            "dry_run: %s; messages are logged and stored in the outbox, not sent",
            settings.missing_credentials(),
        )
    ReceiverServer(settings).run()
