"""The DingTalk directory: a synced local store that aliases (mobile, email, name) resolve in.

`store` keeps it (SQLite); `sync` walks DingTalk's department and user lists through
the narrow `Caller` interface, which receiver.dingtalk.client.Client satisfies.
"""
