"""What the worker sends through, and what one send comes to: the senders' interfaces,
the outcome of handling an item, and the retry defaults every channel shares."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Protocol

from receiver.delivery.outbox import Item
from receiver.dingtalk.client import SendResult

if TYPE_CHECKING:
    from receiver.delivery.limits import Limits

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 300.0
GIVE_UP_AFTER_S = 24 * 3600.0
CLAIM_MIN, CLAIM_MAX = 10, 50  # items a claim leases: about a second's worth of calls


def claim_size(limits: Limits | None) -> int:
    """How many items a claim leases: as many calls as the limits allow in a second (the
    send rate, and the recipients a minute at one a call), 10 to 50. A bigger claim costs
    less a send, in CPU and more in wall time (row 7, bench/README.md); more than a
    second's worth would lease items early, that a newer webhook of their group could
    otherwise still replace while they wait for room."""
    if limits is None:
        return CLAIM_MIN
    per_second = min(limits.calls_per_window / limits.window, limits.per_minute / 60)
    return max(CLAIM_MIN, min(CLAIM_MAX, int(per_second)))


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
