"""gunicorn's sync worker, whose own error answers are problems like every other error answer.

gunicorn answers a request it cannot parse itself, before the app sees it: a request line over
REQUEST_LINE_CAP (414; the app answers its own 414 from 16 KiB), a header over
`limit_request_field_size` or too many headers (431), a malformed request line, method or header (400), and a 500 when a request dies outside Django
(a worker timeout). It answered them as an HTML page without `X-Request-ID`; the contract
(API.md, "Errors") wants `application/problem+json` with a `request_id`, and the id in a log line.

gunicorn decides the status and logs the error in `Worker.handle_error`, which then writes the
answer with `gunicorn.util.write_error` (its only caller): this worker keeps all of that and
replaces only the writer, in its own process, with one that writes the project's problem.

It also stops listening as soon as a graceful stop (SIGTERM: `docker stop`, a HUP's old workers)
finds it busy: the master closes its copy of the listening socket at once, but a sync worker
serving a slow request held its inherited copy open until it exited, up to graceful_timeout, so
the kernel kept completing connections into a backlog nobody would accept: each waited, then was
reset when the worker exited (a 502 behind a proxy, which cannot retry a POST it has sent). With
the worker's copy closed, and the master's, a connection is refused at once and the proxy tries
another replica. (On a HUP the new workers and the master still listen and take it.) gunicorn's
gevent and eventlet workers close their listeners the same way at the start of a graceful stop.

And a request stuck in the database at gunicorn's timeout (a stalled server, a partition that
keeps the socket open) gets its 500 problem like any other timed-out request: see handle_abort.
"""

import contextlib
import time
from http import HTTPStatus

from django.apps import apps
from gunicorn import util
from gunicorn.http.errors import InvalidHeader
from gunicorn.http.message import Request
from gunicorn.http.parser import RequestParser
from gunicorn.workers.sync import SyncWorker

gunicorn_write_error = util.write_error
# The longest request line gunicorn reads (its own 414 beyond): 4 x the app's MAX_URL_BYTES,
# whose 414 a browser app can read. gunicorn clamps limit_request_line to 8,190 bytes, so
# gunicorn.conf.py turns its cap off (0) and this one takes its place: with none, one client
# kept a worker at 100 % of a core for the 30 s timeout, reading 20 MiB (review 33d).
REQUEST_LINE_CAP = 64 * 1024


class _CappedRequest(Request):
    def read_line(self, unreader, buf, limit=0):
        return super().read_line(unreader, buf, limit or REQUEST_LINE_CAP)


class _Listened:
    """A listener's address, as gunicorn asks it of the listener for each request (the WSGI
    SERVER_NAME and SERVER_PORT) once the request is parsed: by then handle_exit may have closed
    the listener."""

    def __init__(self, address) -> None:
        self.address = address

    def getsockname(self):
        return self.address


def _close_database_connections() -> None:
    """Ends this process's database connections at libpq's level, and makes any new one fail
    at once: the worker is being killed."""
    if not apps.ready:
        return
    from django.db import connections

    def no_new_connection(*args, **kwargs):
        raise SystemExit(1)  # gunicorn's, not a database error: the request's 500

    for wrapper in connections.all(initialized_only=True):
        # Django's atomic block sets autocommit on a new connection after a failed rollback:
        # to a stalled server that waits DB_CONNECT_TIMEOUT, past the SIGKILL.
        wrapper.get_new_connection = no_new_connection
        if wrapper.connection is not None:
            with contextlib.suppress(Exception):  # being killed: nothing to do about it
                # A server that answers ends the query, and its transaction's locks, at once
                # (PQfinish alone left the backend waiting on, holding them); a stalled one
                # gets 0.3 s of the second before the SIGKILL.
                wrapper.connection.cancel_safe(timeout=0.3)
            with contextlib.suppress(Exception):
                wrapper.connection.pgconn.finish()


class ProblemSyncWorker(SyncWorker):
    erring_request = None  # gunicorn's request being answered, when it got as far as parsing one
    erring_address = None  # its client's, as accept() gave it: (host, port), or "" on a socket file
    # When the connection being served was accepted (the sync worker serves one request on
    # each): a request killed by the timeout was logged as taking the 0.3 ms of writing its 500.
    serving_since: float | None = None

    def init_process(self) -> None:
        util.write_error = self.write_problem
        RequestParser.mesg_class = _CappedRequest
        super().init_process()  # runs the worker's loop until it exits

    def handle_exit(self, sig, frame) -> None:
        super().handle_exit(sig, frame)  # no longer alive: the loop ends after this request
        # Busy: new connections refused from now on. An idle worker exits at once anyway (and
        # may be between the loop's `alive` check and accept(): its listeners are left alone).
        if self.serving_since is not None:
            for listener in self.sockets:
                listener.close()

    def handle_abort(self, sig, frame) -> None:
        # gunicorn's timeout: SIGABRT, then SIGKILL a second later. A request waiting on the
        # database got no answer at all (its connection closed, no status line): psycopg,
        # interrupted by gunicorn's SystemExit, first cancels the query (up to 5 s, then 5 s
        # more for its end), and the SIGKILL came first. With its connections ended it has
        # nothing to cancel, and the client gets the 500 problem of a timed-out request
        # (review 36a: 4 requests dropped in a 40 s stall; 0 with this).
        _close_database_connections()
        super().handle_abort(sig, frame)

    def accept(self, listener) -> None:
        # With several binds, gunicorn's loop goes on to accept() on the other ready listeners
        # after a request, which handle_exit may have closed meanwhile.
        if not self.alive:
            return
        super().accept(listener)

    def handle(self, listener, client, addr) -> None:
        # The address first: a SIGTERM from here on finds the worker busy and closes `listener`.
        listened = _Listened(listener.getsockname())
        self.serving_since = time.perf_counter()
        try:
            super().handle(listened, client, addr)
        finally:
            self.serving_since = None

    def handle_error(self, req, client, addr, exc) -> None:
        # A bad header's exception carries the request parsed so far (gunicorn's handle_error
        # takes it for its access log too).
        self.erring_request = exc.req if req is None and isinstance(exc, InvalidHeader) else req
        self.erring_address = addr
        try:
            super().handle_error(req, client, addr, exc)
        finally:
            self.erring_request = self.erring_address = None

    def write_problem(self, sock, status_int: int, reason: str, mesg: str) -> None:
        if not apps.ready:  # an app without Django (bench/floor.py): gunicorn's own page
            gunicorn_write_error(sock, status_int, reason, mesg)
            return
        from django.http import HttpRequest
        from django.middleware.security import SecurityMiddleware

        from todo_project.problems import UNEXPECTED_ERROR_DETAIL, problem_response
        from todo_project.request_id import (
            REQUEST_ID_HEADER,
            REQUEST_ID_META_KEY,
            identified,
            log_access,
        )

        started = self.serving_since or time.perf_counter()
        request = HttpRequest()  # path "" (`instance` of the answer: this request's own URI)
        if isinstance(self.erring_address, tuple):  # the access log's client_ip, as the app's
            request.META["REMOTE_ADDR"] = self.erring_address[0]
        req = self.erring_request
        if req is not None:
            request.method, request.path = req.method, req.path
            # A sane X-Request-ID is echoed, as the app does (a request that timed out in the
            # app keeps the id the client gave it, which the app's log lines carried).
            request.META.update(
                (REQUEST_ID_META_KEY, value)
                for name, value in req.headers
                if name == "X-REQUEST-ID"
            )
            forwarded = [value for name, value in req.headers if name == "X-FORWARDED-FOR"]
            if forwarded:  # several such headers are one list, as gunicorn gives the app
                request.META["HTTP_X_FORWARDED_FOR"] = ",".join(forwarded)
        with identified(request) as request_id:
            response = problem_response(
                request,
                status_int,
                mesg or UNEXPECTED_ERROR_DETAIL,
            )
            response[REQUEST_ID_HEADER] = request_id
            response["Content-Length"] = str(len(response.content))
            response["Connection"] = "close"
            # The headers the app's answers get (nosniff, Referrer-Policy, COOP).
            SecurityMiddleware(lambda request: response).process_response(request, response)
            # gunicorn gives some statuses another's reason (a 501 as "Bad Request").
            head = f"HTTP/1.1 {status_int} {HTTPStatus(status_int).phrase}\r\n".encode("latin-1")
            util.write_nonblock(
                sock, head + response.serialize_headers() + b"\r\n\r\n" + response.content
            )
            # The request's one access-log line, with its id (gunicorn logged the error itself).
            log_access(request, status_int, started)
