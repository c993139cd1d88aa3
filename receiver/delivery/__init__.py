"""The delivery stage: the outbox and the worker that drains it to DingTalk.

A webhook is stored as pending (outbox) before the 2xx; the planner routes and renders
it (pipeline) into items, one per message and recipients; the worker claims items,
sends them within the limits, and records sent / retry / dead; the follow-up asks
getsendresult what became of each send. `state` is what a process holds of the
loaded configuration; `health` is the delivery heartbeat that /readyz reads.
"""
