"""The HTTP under the DingTalk client: one kept-alive `http.client` connection per host.

requests, with urllib3 under it, took 0.45 ms of CPU for one asyncsend_v2 against
the fake DingTalk on loopback; `http.client` on a kept connection 0.1 ms, and with
each request written and its reply read by receiver.dingtalk.wire (http.client only
connects) 0.05 ms (bench/README.md). The delivery process makes one call per message.
What the client kept from requests, it keeps here:

- the proxy: DINGTALK_PROXY, else the environment's (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY,
  NO_PROXY), read once per host with requests' own functions; an https URL goes
  through a CONNECT tunnel, an http one as an absolute URL, with the proxy's
  user:password as Basic auth; a proxy of another scheme (https://, socks5://) is left
  to requests, as before;
- certificates checked against the same CA bundle (certifi's, or REQUESTS_CA_BUNDLE
  or CURL_CA_BUNDLE) and the host name;
- credentials from ~/.netrc for the host, as Basic auth;
- a timeout on the connect and on every read.

A kept connection that the server closed while it sat idle (the request could not be
sent, or the server closed it without a word of reply) is opened again once; a
connection reset while the reply was coming is a network error, as with requests.
Redirects are not followed: DingTalk's API does not redirect, and a 3xx reply is
no JSON, so it is retried like any reply that is not JSON.
"""

from __future__ import annotations

import base64
import http.client
import os
import select
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import requests
import requests.utils

from receiver.dingtalk.wire import host_header, read_reply, request_bytes

# Failures of a kept connection before any reply: the server closed it while it was idle.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
          ConnectionAbortedError)  # fmt: skip


class NetworkError(Exception):
    """The call got no reply. `kind`, as requests named it: ConnectionError or ProxyError."""

    def __init__(self, kind: str, cause: BaseException) -> None:
        super().__init__(kind, cause)
        self.kind = kind
        self.cause = cause


class Timeout(Exception):
    """The connect, or a read, took longer than the timeout."""


@dataclass(frozen=True)
class Reply:
    status: int
    content: bytes


@dataclass(frozen=True)
class _Route:
    """How to reach one scheme://host:port: directly, or through a proxy."""

    proxy: str | None  # http://host:port of the proxy
    proxy_auth: str | None  # its Proxy-Authorization header
    auth: str | None  # the host's Authorization header, from ~/.netrc


@dataclass(frozen=True)
class _Aim:
    """Where one URL's requests go: its host, route, request target and Host header."""

    scheme: str
    hostname: str
    port: int | None
    origin: str  # scheme://host:port, the key of its kept connection
    route: _Route
    target: str
    host: str


# http.client connects (through a proxy's tunnel, with TLS); receiver.dingtalk.wire
# writes each request and reads its reply on the connected socket.
_HTTP = http.client.HTTPConnection
_HTTPS = http.client.HTTPSConnection


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


class Transport:
    """Kept connections, one per (scheme, host, port); calls on one take turns."""

    def __init__(self, proxy: str | None = None) -> None:
        self.proxy = proxy
        self._routes: dict[str, _Route] = {}
        self._aims: dict[str, _Aim] = {}  # per URL without params
        self._conns: dict[str, _HTTP | _HTTPS] = {}
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None
        self._session: requests.Session | None = None  # only for a proxy not http://

    def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float,
    ) -> Reply:
        aim = None if params else self._aims.get(url)
        if aim is None:
            aim = self._aim(url, params)
            if not params:
                if len(self._aims) >= 256:  # a URL carries the token: a new one a few times a day
                    self._aims.clear()
                self._aims[url] = aim
        origin, route, target, host = aim.origin, aim.route, aim.target, aim.host
        sent = {"User-Agent": "dingtalk-receiver", "Accept": "*/*", **(headers or {})}
        if route.auth and "Authorization" not in sent:
            sent["Authorization"] = route.auth
        if route.proxy_auth and aim.scheme == "http":
            sent["Proxy-Authorization"] = route.proxy_auth
        if route.proxy and not route.proxy.startswith("http://"):
            return self._through_requests(method, url, params, data, sent, timeout, route.proxy)
        with self._lock:
            conn = self._conns.get(origin)
            kept = conn is not None
            for attempt in (0, 1):
                if conn is None:
                    conn = self._conns[origin] = self._new(aim.scheme, aim.hostname, aim.port,
                                                           route)  # fmt: skip
                conn.timeout = timeout
                replied = False  # whether any of a reply came: then it is not sent again
                try:
                    if conn.sock is not None and _dropped(conn.sock):
                        conn.close()  # the server closed it while it sat idle, as urllib3 checks
                    if conn.sock is None:
                        self._open(conn, route)
                    else:
                        conn.sock.settimeout(timeout)
                    assert conn.sock is not None
                    # the headers and the body in one write: one segment
                    conn.sock.sendall(request_bytes(method, target, host, sent, data))
                    try:
                        status, content, closes = read_reply(conn.sock, method)
                    except http.client.RemoteDisconnected:
                        raise  # closed without a word: the server never took the request
                    except _STALE:
                        replied = True  # reset while it answered: it may have been done
                        raise
                    replied = True
                    if closes:
                        conn.close()  # opened again for the next call
                    return Reply(status, content)
                except TimeoutError as e:
                    self._drop(origin)
                    raise Timeout(str(e)) from None
                except NetworkError:
                    self._drop(origin)
                    raise
                except _STALE as e:
                    self._drop(origin)
                    conn = None
                    if kept and attempt == 0 and not replied:
                        continue  # closed while idle: open it again, once
                    raise NetworkError("ConnectionError", e) from None
                except (OSError, http.client.HTTPException) as e:
                    self._drop(origin)
                    raise NetworkError(_kind(e), e) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _aim(self, url: str, params: dict[str, Any] | None) -> _Aim:
        """Where a request for `url` goes; `request` keeps it per URL without params."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise NetworkError("ConnectionError", ValueError(f"not an http(s) URL: {url!r}"))
        origin = f"{parts.scheme}://{parts.netloc}"
        route = self._route(origin, url)
        target = parts.path or "/"
        query = "&".join(q for q in (parts.query, urlencode(params or {}, doseq=True)) if q)
        if query:
            target += "?" + query
        if route.proxy and parts.scheme == "http":
            target = origin + target  # an http proxy is asked for the absolute URL
        host = host_header(parts.hostname, parts.port, 443 if parts.scheme == "https" else 80)
        return _Aim(parts.scheme, parts.hostname, parts.port, origin, route, target, host)

    def _through_requests(
        self, method: str, url: str, params: dict[str, Any] | None, data: bytes | None,
        headers: dict[str, str], timeout: float, proxy: str,
    ) -> Reply:  # fmt: skip
        """A call through a proxy that http.client does not speak (TLS to it, SOCKS)."""
        with self._lock:
            if self._session is None:
                self._session = requests.Session()
                self._session.trust_env = False  # the proxy and the netrc auth are in hand
            try:
                res = self._session.request(
                    method, url, params=params, data=data, headers=headers, timeout=timeout,
                    proxies={"http": proxy, "https": proxy}, verify=self._bundle(),
                )  # fmt: skip
            except requests.Timeout as e:
                raise Timeout(str(e)) from None
            except requests.RequestException as e:
                raise NetworkError(type(e).__name__, e) from None
            return Reply(res.status_code, res.content)

    @staticmethod
    def _open(conn: _HTTP | _HTTPS, route: _Route) -> None:
        """Connect (through the proxy's tunnel, for https); failures name the proxy."""
        try:
            conn.connect()
        except TimeoutError:
            raise
        except OSError as e:
            kind = "ProxyError" if route.proxy and not isinstance(e, ssl.SSLError) else _kind(e)
            raise NetworkError(kind, e) from None
        assert conn.sock is not None
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one write a call

    def close(self) -> None:
        with self._lock:
            for origin in list(self._conns):
                self._drop(origin)

    def _drop(self, origin: str) -> None:
        conn = self._conns.pop(origin, None)
        if conn is not None:
            conn.close()

    def _route(self, origin: str, url: str) -> _Route:
        route = self._routes.get(origin)
        if route is None:
            proxy = self.proxy
            if not proxy:
                proxy = requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url))
            proxy_auth = None
            if proxy:
                if "://" not in proxy:
                    proxy = "http://" + proxy
                p = urlsplit(proxy)
                if p.scheme == "http":  # else requests takes the URL as it is
                    if p.username is not None:
                        proxy_auth = _basic(unquote(p.username), unquote(p.password or ""))
                    proxy = f"http://{p.hostname}:{p.port or 80}"
            netrc = requests.utils.get_netrc_auth(url)
            auth = _basic(*netrc) if netrc else None
            route = self._routes[origin] = _Route(proxy, proxy_auth, auth)
        return route

    def _new(self, scheme: str, host: str, port: int | None, route: _Route) -> _HTTP | _HTTPS:
        if route.proxy:
            p = urlsplit(route.proxy)
            proxy_host, proxy_port = p.hostname or "", p.port or 80
            if scheme != "https":
                return _HTTP(proxy_host, proxy_port)
            conn = _HTTPS(proxy_host, proxy_port, context=self._context())
            tunnel = {"Proxy-Authorization": route.proxy_auth} if route.proxy_auth else None
            conn.set_tunnel(host, port or 443, headers=tunnel)
            return conn
        if scheme == "https":
            return _HTTPS(host, port, context=self._context())
        return _HTTP(host, port)

    @staticmethod
    def _bundle() -> str:
        """The CA bundle requests checked certificates against."""
        return (
            os.environ.get("REQUESTS_CA_BUNDLE")
            or os.environ.get("CURL_CA_BUNDLE")
            or requests.utils.DEFAULT_CA_BUNDLE_PATH
        )

    def _context(self) -> ssl.SSLContext:
        if self._tls is None:
            bundle = self._bundle()
            self._tls = ssl.create_default_context(
                cafile=bundle if os.path.isfile(bundle) else None,
                capath=bundle if os.path.isdir(bundle) else None,
            )
        return self._tls


def _dropped(sock: socket.socket) -> bool:
    """Whether an idle connection has something to read: the server's close (or junk)."""
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _kind(e: BaseException) -> str:
    """The name requests gave this failure, which the error text starts with."""
    return "SSLError" if isinstance(e, ssl.SSLError) else "ConnectionError"
