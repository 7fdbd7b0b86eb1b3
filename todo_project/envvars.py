"""Reading the environment, with one rule for every variable: unset and set-but-empty are the
same (the default), and a value that would break the service stops the process at the start
with one line on stderr naming the variable, exit status 78.

Shared by settings.py and gunicorn.conf.py (gunicorn reads its variables before the app's
settings load): standard library only, nothing of Django.
"""

import ipaddress
import os
import re
import sys
from collections.abc import Iterable
from typing import NoReturn


def refuse(message: str) -> NoReturn:
    # One line on stderr, and the process (manage.py, or gunicorn's master: preload_app) stops:
    # a misconfiguration is found at the start, not by the first users, and no traceback buries
    # what to fix. Exit status 78, sysexits' EX_CONFIG: not a command's own failure (1), which
    # `makemigrations --check` uses for "migrations missing". SystemExit is no Exception, so
    # gunicorn's "Failed to read config file" handler lets it through.
    print(message, file=sys.stderr)
    sys.exit(os.EX_CONFIG)


def env(name: str, default: str) -> str:
    """The variable's value; its default when it is unset or empty. An env-file line `NAME=`
    (as .env.example writes the optional ones) means "not set", never the empty string: an
    empty EMAIL_BACKEND made every password reset a 500, an empty EMAIL_HOST every mail fail."""
    return os.environ.get(name) or default


def env_bool(name: str, default: bool) -> bool:
    value = env(name, "")
    if value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    refuse(f"{name} must be a boolean (1/0, true/false), not {value!r}.")


def env_int(name: str, default: int, *, minimum: int = 0, maximum: int = 2**31 - 1) -> int:
    # A negative count or duration is never meant; where 0 would break the service (a timeout,
    # a lifetime, a size), the caller says the minimum. Above 2^31 - 1 (68 years in seconds),
    # timedelta or a database column overflows with a traceback.
    value = env(name, "")
    try:
        number = int(value) if value else default
    except ValueError:
        refuse(f"{name} must be a whole number, not {value!r}.")
    if not minimum <= number <= maximum:
        refuse(f"{name} must be from {minimum} to {maximum}, not {number}.")
    return number


def env_choice(name: str, default: str, choices: Iterable[str]) -> str:
    """One of `choices` (upper case), whatever the case of the value."""
    choices = list(choices)
    value = env(name, default).upper()
    if value not in choices:
        refuse(f"{name} must be {', '.join(choices[:-1])} or {choices[-1]}, not {value!r}.")
    return value


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


# --- gunicorn's variables ---------------------------------------------------------------------
# Read by gunicorn.conf.py, and checked by the settings too: `manage.py check`, and the migrate
# that runs before gunicorn (the Docker image's CMD, make serve), refuse them in the same one
# line. gunicorn itself reads WEB_CONCURRENCY with a bare int() when it is imported, before its
# config file: started alone, gunicorn stops at a WEB_CONCURRENCY that is no number with its own
# traceback.


def gunicorn_bind() -> str:
    """HOST:PORT, an IPv6 address in brackets (gunicorn reads [::1]:8000, not ::1:8000)."""
    host = env("HOST", "127.0.0.1").removeprefix("[").removesuffix("]")
    if re.search(r"[\s/\[\]]", host):
        refuse(f"HOST must be a host name or an IP address (0.0.0.0, ::), not {host!r}.")
    if ":" in host and not is_bracketed_ipv6(f"[{host}]"):
        # 0.0.0.0:8000: gunicorn bound [0.0.0.0:8000]:8000, retried five times, exit 1.
        refuse(
            f"HOST must be a host name or an IP address without a port (PORT is the port), "
            f"not {host!r}."
        )
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{env_int('PORT', 8000, minimum=1, maximum=65535)}"


def is_bracketed_ipv6(value: str) -> bool:
    """[::1]: an IPv6 address in brackets, as in a URL's host (a port may not follow)."""
    if not (value.startswith("[") and value.endswith("]")):
        return False
    try:
        ipaddress.IPv6Address(value[1:-1])
    except ValueError:
        return False
    return True


def gunicorn_forwarded_allow_ips() -> str:
    """The proxies whose X-Forwarded-* gunicorn believes: `*`, or addresses and networks.
    Only read behind proxies (TRUSTED_PROXY_COUNT > 0); else none. A value gunicorn cannot
    read stopped it with a line that named no variable."""
    if env_int("TRUSTED_PROXY_COUNT", 0) == 0:
        return ""
    value = env("FORWARDED_ALLOW_IPS", "*")
    for item in value.split(","):
        if item.strip() in ("", "*"):  # as gunicorn reads it: empty items skipped
            continue
        try:
            ipaddress.ip_network(item.strip())  # strict, as gunicorn's: no host bits in a network
        except ValueError:
            refuse(f"FORWARDED_ALLOW_IPS must be * or IP addresses or networks, not {value!r}.")
    return value


def gunicorn_workers() -> int:
    # 0 started a master that listened with no worker: every request waited, nothing was logged.
    return env_int("WEB_CONCURRENCY", 4, minimum=1)
