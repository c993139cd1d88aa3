"""What a web worker (and the delivery process, which plans with it) holds, and how
it picks up a new routing.yaml without going down.

Every worker polls the routing file's digest about once a second (from a
thread, and before a request), so an edit reaches every gunicorn worker within
a second; `POST /-/reload` reloads the worker that answers at once, and SIGHUP
makes the arbiter check the file and log the verdict. A file that fails to
load is refused: the running table stays, the problems are logged once with
FILE:LINE and counted. After each good load the file is kept
as `routing.last-good.yaml`, so a worker that boots while the file on disk is
broken starts with the last good table instead of failing to boot.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from datetime import UTC, datetime

from receiver import metrics
from receiver.delivery.outbox import Outbox
from receiver.directory.pg import open_store
from receiver.errors import ConfigError
from receiver.messages.render import Renderer
from receiver.routing import loader as config
from receiver.routing.table import Directory
from receiver.settings import Settings

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 1.0
LAST_GOOD_FILE = "routing.last-good.yaml"


class State:
    def __init__(
        self, settings: Settings, *, fallback: bool = False, outbox: Outbox | None = None,
        warn: bool = True,
    ) -> None:  # fmt: skip
        """`warn=False`: leave the config warnings to another process (serve's web workers
        do: the one delivery process logs each once, not once per process)."""
        self.settings = settings
        self.warn = warn
        # Always the store, synced or not: aliases resolve when an alert is planned,
        # so a sync that lands while serving takes effect without a reload.
        self.directory: Directory = open_store(settings.data_dir, settings.database_url)
        self.outbox = outbox or Outbox(settings.data_dir, database_url=settings.database_url)
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        self._digest = config.fingerprint(settings.routing)
        self._refused = ""  # digest of a file already refused, so it is logged once
        # The problems of the last refused file, and when, until a load succeeds (the console).
        self.reload_error: tuple[datetime, tuple[str, ...]] | None = None
        try:
            self.table = config.load(settings.routing, self.directory)
        except ConfigError as e:
            last_good = os.path.join(settings.data_dir, LAST_GOOD_FILE)
            if not (fallback and os.path.exists(last_good)):
                raise
            log.error("config_invalid_using_last_good problems=%s", _join(e))
            self.reload_error = (datetime.now(UTC), tuple(map(str, e.problems)))
            self.table = config.load(last_good, self.directory)
            self._refused = self._digest
        metrics.config_last_reload_ok.set(0 if self._refused else 1)
        self.renderer = self._renderer()
        self._loaded()

    def _renderer(self) -> Renderer:
        return Renderer.from_settings(self.settings, on_fallback=_count_fallback)

    def _loaded(self) -> None:
        self.loaded_at = datetime.now(UTC)
        metrics.config_last_reload.set(self.loaded_at.timestamp())
        for warning in self.table.warnings if self.warn else ():
            log.warning("config_warning %s", warning)
        if self._refused != self._digest:
            self._save_last_good()

    def _save_last_good(self) -> None:
        path = os.path.join(self.settings.data_dir, LAST_GOOD_FILE)
        try:
            with open(self.settings.routing, "rb") as src:
                loaded = src.read()
            if hashlib.sha256(loaded).hexdigest() != self._digest:
                return  # edited since it was loaded: not known to be good
            with open(f"{path}.{os.getpid()}.tmp", "wb") as dst:
                dst.write(loaded)
            os.replace(f"{path}.{os.getpid()}.tmp", path)
        except OSError as e:
            log.warning("last_good_not_saved error=%s", e)

    def reload(self, reason: str = "request") -> None:
        """Load the routing file again; on error the running table stays and ConfigError rises."""
        with self._lock:
            digest = config.fingerprint(self.settings.routing)
            result = config.reload(self.settings.routing, self.table, self.directory)
            if not result.ok:
                metrics.config_reloads.labels("failure").inc()
                metrics.config_last_reload_ok.set(0)
                if digest != self._refused:
                    log.error("config_reload_failed reason=%s problems=%s", reason,
                              "; ".join(map(str, result.problems)))  # fmt: skip
                self._refused = self._digest = digest
                self.reload_error = (datetime.now(UTC), tuple(map(str, result.problems)))
                raise ConfigError(list(result.problems))
            self.table, self._digest, self._refused = result.table, digest, ""
            self.reload_error = None
            self.renderer = self._renderer()
            self._loaded()
            metrics.config_reloads.labels("success").inc()
            metrics.config_last_reload_ok.set(1)
            log.info("config_reloaded reason=%s routing=%s", reason, self.settings.routing)

    def start_watching(self) -> None:
        def watch() -> None:
            while True:
                time.sleep(POLL_INTERVAL_S)
                self.poll()

        threading.Thread(target=watch, name="config-watch", daemon=True).start()

    def poll(self) -> None:
        """Reload if the file changed; cheap enough to run before every request."""
        with self._lock:
            now = time.monotonic()
            if now - self._checked < POLL_INTERVAL_S * 0.9:
                return
            self._checked = now
        if config.fingerprint(self.settings.routing) == self._digest:
            return
        try:
            self.reload("file_changed")
        except ConfigError:
            pass  # logged and counted once; the running table stays


def _count_fallback(template: str) -> None:
    metrics.template_fallbacks.labels(template).inc()


def _join(e: ConfigError) -> str:
    return "; ".join(str(p) for p in e.problems)
