"""The messages stage: a Notification becomes DingTalk `msg` bodies within the byte budget.

Jinja sandbox and templates (render, sandbox), the filters they use, the budget that
fits a group into 2048 bytes, the links back to the receiver, and the built-in templates.
Pure: no Flask, sqlite3 or requests.
"""
