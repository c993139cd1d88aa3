"""What a web worker (and the delivery process, which plans with it) holds, and how
it picks up a new routing.yaml without going down.

Every worker polls the routing file's digest about once a second (from a
thread, and before a request); the delivery process before it plans, which it
does when woken and at least every few seconds. A changed file is loaded once its
digest has stayed the same for RECEIVER_RELOAD_SETTLE (2 s), or at once when it
was last written that long ago, so an editor or a `cp` that writes it in pieces is
never caught half-way; an edit reaches every worker within about three seconds.
`POST /-/reload` reloads the worker that answers at once, and SIGHUP makes the
arbiter check the file and log the verdict. A file that fails to load, or names a
template that is missing or does not compile, is refused: the running table stays,
the problems are logged once with FILE:LINE and counted, and `status()` says so (for
/readyz). After each good load the file is kept as `routing.last-good.yaml`, so a
worker that boots while the file on disk is broken starts with the last good table
instead of failing to boot.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from receiver import metrics
from receiver.delivery import wake
from receiver.delivery.configcheck import check_templates
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
        self,
        settings: Settings,
        *,
        fallback: bool = False,
        outbox: Outbox | None = None,
        warn: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`warn=False`: leave the config warnings to another process (serve's web workers
        do: the one delivery process logs each once, not once per process)."""
        self.settings = settings
        self.warn = warn
        wake.configure(settings.delivery_processes)  # what this process commits wakes them all
        self._clock = clock
        # Always the store, synced or not: aliases resolve when an alert is planned,
        # so a sync that lands while serving takes effect without a reload.
        self.directory: Directory = open_store(settings.data_dir, settings.database_url)
        self.outbox = outbox or Outbox(settings.data_dir, database_url=settings.database_url)
        self._lock = threading.Lock()
        self._checked = clock()
        self._digest = config.fingerprint(settings.routing)
        self._refused = ""  # digest of a file already refused, so it is logged once
        # The problems of the last refused file, and when, until a load succeeds (the console).
        self.reload_error: tuple[datetime, tuple[str, ...]] | None = None
        self._changed: tuple[str, float] | None = None  # a new digest, and since when
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
            # What serve checks at start: a receiver naming a template that is missing
            # or does not compile would fall back to the built-in one on every page.
            problems = result.problems or tuple(
                check_templates(result.table, self.settings.templates).errors
            )
            if problems:
                metrics.config_reloads.labels("failure").inc()
                metrics.config_last_reload_ok.set(0)
                if digest != self._refused:
                    log.error("config_reload_failed reason=%s problems=%s", reason,
                              "; ".join(map(str, problems)))  # fmt: skip
                self._refused = self._digest = digest
                self.reload_error = (datetime.now(UTC), tuple(map(str, problems)))
                raise ConfigError(list(problems))
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
        """Reload if the file changed and then settled; cheap enough to run before every
        request. The file must keep one digest for RECEIVER_RELOAD_SETTLE first."""
        with self._lock:
            now = self._clock()
            if now - self._checked < POLL_INTERVAL_S * 0.9:
                return
            self._checked = now
            digest = config.fingerprint(self.settings.routing)
            if digest == self._digest:
                self._changed = None
                return
            if self._changed is None or self._changed[0] != digest:
                self._changed = (digest, now)  # changed (again): its settle period starts
            settle = self.settings.reload_settle
            # Or it settled before this poll saw it: the delivery process, idle, polls
            # only when woken or every few seconds, and plans the next webhook right after.
            if now - self._changed[1] < settle and _written_ago(self.settings.routing) < settle:
                return
            self._changed = None
        try:
            self.reload("file_changed")
        except ConfigError:
            pass  # logged and counted once; the running table stays

    def status(self) -> dict[str, Any]:
        """For /readyz: the table serving, and whether the file on disk is refused."""
        out: dict[str, Any] = {
            "ok": self.reload_error is None,
            "routing": self.table.path,
            "loaded_at": self.loaded_at.isoformat(),
        }
        if self.reload_error is not None:
            since, problems = self.reload_error
            out["error"] = (
                f"{self.settings.routing} on disk is refused since {since.isoformat()}; the"
                f" table loaded at {out['loaded_at']} from {self.table.path} is serving"
            )
            out["problems"] = list(problems)
        elif self._changed is not None:
            out["settling"] = True  # changed on disk; loaded once it stays unchanged
        return out


def _written_ago(path: str) -> float:
    """Seconds since the file was last written (0 if that can't be told, or is ahead)."""
    try:
        return max(0.0, time.time() - os.stat(path).st_mtime)
    except OSError:
        return 0.0


def _count_fallback(template: str) -> None:
    metrics.template_fallbacks.labels(template).inc()


def _join(e: ConfigError) -> str:
    return "; ".join(str(p) for p in e.problems)
