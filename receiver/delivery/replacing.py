"""Which accepted webhooks a newer one of the same group replaces before they are planned. Pure.

Alertmanager sends a group's whole state each time, so when several webhooks of one
(source, receiver in the URL, group key) wait to be planned at once, routing and
rendering the older ones only makes items that the newest one's items replace at the
claim (receiver.delivery.order). The planner plans only the newest, and marks the
older ones replaced, when the newest says everything they would have said:

- it is not cut short (`truncatedAlerts` 0: Alertmanager's and Grafana's `max_alerts`
  leave alerts out of it);
- every alert in it is firing: a resolved notification never replaces a firing one
  here (order.py's exception: it must not arrive alone), so those are planned each,
  and the claim decides per receiver as before;
- every alert of the older one is in it (the same labels): an alert that left the
  group in between (resolved, sent once, dropped) is still told by the older one,
  which is then planned as before.

A webhook without a group key (none was sent) is never replaced.
"""

from __future__ import annotations

from receiver.model import Notification


def covers(newest: Notification, older: Notification) -> bool:
    """Whether `newest` carries the current state of everything `older` said."""
    if newest.truncated_alerts or any(a.status != "firing" for a in newest.alerts):
        return False
    have = {frozenset(a.labels.items()) for a in newest.alerts}
    return all(frozenset(a.labels.items()) in have for a in older.alerts)
