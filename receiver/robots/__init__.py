"""DingTalk group robots: a channel beside the work notification (receiver.dingtalk).

`client` signs and posts a robot message and classifies DingTalk's answer into
receiver.errors; `limiter` keeps each robot under its 20 posts a minute, shared by
every process on the host. Rendering the copy is receiver.messages.robot's; queueing
it is the outbox's (receiver.delivery.robots).
"""
