"""The routing stage: routing.yaml, read strictly, becomes a pure tree of routes.

`load_routing` (receiver.routing.loader.load) is the one loader: serve, check-config,
`routes test` and `/-/reload` all call it. The table (receiver.routing.table) maps an
alert's labels to receivers and recipients with Alertmanager's semantics; matchers,
time intervals and on-call schedules are its parts. Pure: no Flask, sqlite3 or requests.
"""

from receiver.routing.loader import load as load_routing

__all__ = ["load_routing"]
