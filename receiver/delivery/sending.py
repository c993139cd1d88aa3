"""What the worker sends through, and what one send comes to: the senders' interfaces,
the outcome of handling an item, and the retry defaults every channel shares."""

from __future__ import annotations

from enum import Enum
from typing import Protocol

from receiver.delivery.outbox import Item
from receiver.dingtalk.client import SendResult

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 300.0
GIVE_UP_AFTER_S = 24 * 3600.0


class Sender(Protocol):
    def async_send(
        self, userid_list: list[str], msg: dict[str, object], dept_id_list: list[int]
    ) -> list[SendResult]: ...


class ChannelSender(Protocol):
    """Delivers the items of one channel other than work notifications (a group robot)."""

    def handle(self, item: Item, owner: str) -> bool: ...


class Outcome(Enum):
    SENT = "sent"  # sent, or dead, or held: nothing later waits for it
    WAITING = "waiting"  # still to send (its own retry, a lost lease, stopping)
    PAUSED = "paused"  # sending is paused for everyone: stop the batch
