"""Mail a request does not wait for: it neither waits for the mail server nor fails with it.

`password/reset/` must answer the same, as fast, whether an account has the email or not. Sent
inside the request, the mail to an existing account showed: a 500 when the SMTP server was
down, a slower 202 when it was slow. Each process hands its mails to one thread of its own;
a mail that fails is logged (with the request's id), never raised.
"""

import contextvars
import logging
from concurrent.futures import ThreadPoolExecutor

from django.core.mail import EmailMessage

logger = logging.getLogger("todo.mail")

# One thread: a slow or dead SMTP server holds up later mails (each for EMAIL_TIMEOUT at most),
# never a request. Its thread starts with the first mail, in a worker: gunicorn's master
# (preload_app) imports this module but forks no thread into the workers.
_sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mail")


def send_in_background(message: EmailMessage) -> None:
    """Queues `message` for the mail thread and returns at once."""
    # The backend (and its settings) is chosen now, by the request that wants the mail; the
    # copied context carries the request id into the log line of a failure.
    message.get_connection()
    _sender.submit(contextvars.copy_context().run, _send, message)


def _send(message: EmailMessage) -> None:
    try:
        message.send()
    except Exception:
        # The subject names the kind of mail; the body (a reset link) stays out of the log.
        logger.exception("mail not sent: %s", message.subject)


def wait_until_idle() -> None:
    """Returns once every mail queued so far is sent or given up (tests wait with it)."""
    # The one thread runs its queue in order: once this empty job has run, so have the others.
    _sender.submit(lambda: None).result()
