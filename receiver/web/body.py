"""Reading a webhook body as a stream, within RECEIVER_MAX_BODY_BYTES.

A Content-Length over the limit is refused before a byte is read. Otherwise the body
is read in pieces of at most READ_STEP, and reading stops one byte past the limit, so
a chunked body (no Content-Length) costs no more than the limit either. While it is
read, a body takes at most about twice its own size: the pieces, then the one joined
copy that is returned. What is left unread of a refused body, the worker reads and
drops after the reply (receiver.web.worker), so the client gets its 413, not a reset.
"""

from __future__ import annotations

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request

READ_STEP = 256 * 1024


class BodyTooLarge(RequestEntityTooLarge):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the body is over {limit} bytes (RECEIVER_MAX_BODY_BYTES)")


def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or BodyTooLarge (a 413) once it is known to be over `limit`."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(limit)  # before request.stream, which would raise Werkzeug's own
    stream = request.stream
    pieces: list[bytes] = []
    size = 0
    while size <= limit:
        piece = stream.read(min(READ_STEP, limit + 1 - size))
        if not piece:
            break
        pieces.append(piece)
        size += len(piece)
    if size > limit:
        raise BodyTooLarge(limit)
    body = b"".join(pieces)
    pieces.clear()
    return body
