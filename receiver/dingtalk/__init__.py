"""The only place that imports dingtalk-sdk: the AppKeyClient subclass and its corrections.

`client` holds the wrapper (injected settings, proxy, timeouts, JSON-body asyncsend_v2,
token refresh once); `errcodes` classifies DingTalk's answers into receiver.errors;
`tokenstore` caches access tokens in the data dir, shared by processes.
"""
