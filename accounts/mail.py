"""Mail a request does not wait for: it neither waits for the mail server nor fails with it.

`password/reset/` must answer the same, as fast, whether an account has the email or not. Sent
inside the request, the mail to an existing account showed: a 500 when the SMTP server was
down, a slower 202 when it was slow. Each process hands its mails to one thread of its own,
through a bounded queue; a mail that fails or finds the queue full is logged (with the
request's id), never raised, and so are the mails still queued when the process exits.
"""

import atexit
import contextvars
import logging
import queue
import re
import smtplib
import threading
import time

from django.core.mail import EmailMessage

logger = logging.getLogger("todo.mail")

# A hung SMTP server drains one mail per EMAIL_TIMEOUT (6 a minute at 10 s) while requests can
# queue more (RATE_LIMIT_ANON, per IP): unbounded, the queue would grow without end. 100 mails
# is ~17 minutes of a hung server; beyond that, a mail is dropped (and logged) at once.
QUEUE_SIZE = 100

# How long the process waits at exit for its queued mails. A working SMTP server takes
# milliseconds a mail, so a graceful stop still sends what is queued; a hung one must not hold
# the worker until gunicorn's graceful_timeout (20 s) kills it and its log line with it.
EXIT_WAIT_SECONDS = 2

_queue: queue.Queue = queue.Queue(maxsize=QUEUE_SIZE)
_thread: threading.Thread | None = None
_thread_lock = threading.Lock()


def send_in_background(message: EmailMessage) -> None:
    """Queues `message` for the mail thread and returns at once (drops it if the queue is full)."""
    # The backend (and its settings) is chosen now, by the request that wants the mail; the
    # copied context carries the request id into the log line of a failure. A backend that
    # cannot be loaded (a typo in EMAIL_BACKEND) fails here, so here too it is only logged: a
    # 500 for an existing account's email and a 202 for an unknown one told them apart.
    try:
        message.get_connection()
    except Exception:
        logger.exception("mail not sent, no mail backend: %s", message.subject)
        return
    try:
        _queue.put_nowait((contextvars.copy_context(), message))
    except queue.Full:
        # The subject names the kind of mail; the body (a reset link) stays out of the log.
        logger.error("mail not sent, %d mails already queued: %s", QUEUE_SIZE, message.subject)
        return
    _start_thread()


def _start_thread() -> None:
    # Started with the first mail, in a worker: gunicorn's master (preload_app) imports this
    # module but forks no thread into the workers. Daemon: exit does not wait for it (a hung
    # SMTP server would hold the process), _log_unsent_at_exit bounds the wait instead.
    global _thread
    with _thread_lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="mail", daemon=True)
            _thread.start()


def _run() -> None:
    while True:
        context, message = _queue.get()
        try:
            context.run(_send, message)
        finally:
            _queue.task_done()


def _send(message: EmailMessage) -> None:
    try:
        message.send()
    except Exception as error:  # noqa: BLE001 - logged without its traceback, below
        # No traceback: SMTPRecipientsRefused's text is the refused address (a stale account's,
        # kept in log storage out of reach of the account's deletion).
        logger.error("mail not sent: %s: %s", message.subject, mail_error(error))


# An address as a server's reply may quote it ("<alice@example.com>: Recipient address rejected").
_ADDRESS = re.compile(r"[^\s<>\"'(),;:\[\]]+@[^\s<>\"'(),;:\[\]]+")


def mail_error(error: BaseException) -> str:
    """What went wrong with a mail, for a log line, without the addresses it names: the error's
    class and, from an SMTP server, its code and reply (each recipient's, for a refusal)."""
    name = type(error).__name__
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        replies = sorted({_reply(code, text) for code, text in error.recipients.values()})
        return f"{name}: {'; '.join(replies)}"
    if isinstance(error, smtplib.SMTPResponseException):  # also SMTPSenderRefused, SMTPDataError
        return f"{name}: {_reply(error.smtp_code, error.smtp_error)}"
    text = _ADDRESS.sub("<address>", str(error))
    return f"{name}: {text}" if text else name


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {_ADDRESS.sub('<address>', text)}"


def wait_until_idle() -> None:
    """Returns once every mail queued so far is sent or given up (tests wait with it)."""
    _queue.join()


@atexit.register
def _log_unsent_at_exit() -> None:
    deadline = time.monotonic() + EXIT_WAIT_SECONDS
    with _queue.all_tasks_done:
        while _queue.unfinished_tasks and time.monotonic() < deadline:
            _queue.all_tasks_done.wait(deadline - time.monotonic())
        unsent = _queue.unfinished_tasks
    if unsent:
        logger.error("%d queued mails not sent: the process is exiting", unsent)
