"""README's nginx server block, run as written under Debian's nginx (TLS with a throwaway
certificate, ports of the test's own), in front of a gunicorn of the project or of nothing: the
answers nginx makes itself are the problems a client already handles, and the app's pass
through with what the app needs from the proxy (Host, scheme, client address)."""

import http.client
import json
import re
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from accounts.tokens import RefreshToken
from tasks import services
from tests.missing import tool_missing
from todo_project.problems import title_for
from todo_project.tests.helpers import free_port, one_gunicorn_worker, served

ROOT = Path(__file__).resolve().parent.parent
HOST = "todo.example.com"
ORIGIN = "https://app.example.com"  # the example's CORS origin
PROBLEM = "application/problem+json"


def readme_server_block() -> str:
    block = re.search(r"```nginx\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    assert block, "the nginx example moved"
    return block.group(1)


@pytest.fixture
def nginx() -> str:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        tool_missing("nginx not found (apt-get install nginx)")
    return binary


def wait_for_port(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"nginx did not start:\n{log.read_text()}")
            time.sleep(0.05)


@pytest.fixture
def proxy(nginx, tmp_path):
    """Starts README's nginx in front of 127.0.0.1:<app port>; yields (tls port, plain port)."""
    processes = []

    def start(app_port: int) -> tuple[int, int]:
        self_signed = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj"]
        certificate = ["-keyout", tmp_path / "todo.key", "-out", tmp_path / "todo.crt"]
        subprocess.run(
            ["openssl", *self_signed, f"/CN={HOST}", *certificate], check=True, capture_output=True
        )
        tls = plain = app_port
        while len({tls, plain, app_port}) < 3:  # free_port() may give a port twice
            tls, plain = free_port(), free_port()
        block = (
            readme_server_block()
            .replace("listen 443 ssl http2;", f"listen 127.0.0.1:{tls} ssl http2;")
            .replace("listen 80;", f"listen 127.0.0.1:{plain};")
            .replace("/etc/ssl/", f"{tmp_path}/")
            .replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{app_port};")
        )
        assert block.count(str(tls)) == block.count(str(plain)) == 1, "the listen lines moved"
        temp = " ".join(
            f"{name}_temp_path {tmp_path}/{name};"
            for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        log = tmp_path / "nginx-error.log"
        (tmp_path / "nginx.conf").write_text(
            f"pid {tmp_path}/nginx.pid; error_log {log};\nevents {{}}\n"
            f"http {{ access_log off; {temp}\n{block}\n}}\n"
        )
        process = subprocess.Popen(
            [nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(process)
        wait_for_port(tls, process, log)
        return tls, plain

    yield start
    for process in processes:
        process.terminate()
        process.wait(10)


def ask(port: int, method: str, path: str, body: bytes | None = None, **headers: str):
    """One request over TLS, as a browser app on ORIGIN sends it: (status, headers, body)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request(
            method, path, body=body, headers={"Host": HOST, "Origin": ORIGIN, **headers}
        )
        response = connection.getresponse()
        return response.status, response.headers, response.read()  # names in any case
    finally:
        connection.close()


def assert_problem(answer, status: int) -> dict:
    code, headers, body = answer
    assert code == status, (code, body[:200])
    assert headers["Content-Type"] == PROBLEM, headers
    problem = json.loads(body)
    assert (problem["status"], problem["title"]) == (status, title_for(status))
    assert problem["request_id"] == headers["X-Request-ID"]
    assert headers.get("Server") == "nginx", headers  # server_tokens off: no version
    return problem


def test_nginx_s_own_answers_are_problems(proxy):
    tls, _ = proxy(free_port())  # no app behind it: a restart, as nginx sees one

    down = ask(tls, "GET", "/api/v1/tasks/")
    assert_problem(down, 503)
    assert (down[1]["Retry-After"], down[1]["Access-Control-Allow-Origin"]) == ("5", ORIGIN)

    too_large = ask(tls, "POST", "/api/v1/tasks/", b"{" + b" " * (3 << 20) + b"}")
    assert "larger than 1048576 bytes" in assert_problem(too_large, 413)["detail"]
    assert too_large[1]["Access-Control-Allow-Origin"] == ORIGIN

    # Past nginx's 32 KiB line: refused before any header is read (so no CORS header). The
    # named locations of the other two were a 500 HTML page here ("empty URI").
    long_url = ask(tls, "GET", "/api/v1/tasks/?search=" + "a" * 40_000)
    assert "longer than 16384 bytes" in assert_problem(long_url, 414)["detail"]
    long_header = ask(tls, "GET", "/api/v1/tasks/", **{"X-Note": "a" * 40_000})
    assert_problem(long_header, 431)


@pytest.mark.django_db(transaction=True)
def test_the_app_s_answers_pass_through_nginx_as_the_app_gave_them(proxy, tmp_path, user):
    port = free_port()
    with served(
        one_gunicorn_worker(port, timeout=30),
        port,
        tmp_path,
        ALLOWED_HOSTS=f"127.0.0.1,{HOST}",
        HTTPS="1",
        TRUSTED_PROXY_COUNT="1",
        CORS_ALLOWED_ORIGINS=ORIGIN,
    ):
        tls, plain = proxy(port)

        # Host and X-Forwarded-Proto reach the app: no 400, no redirect to itself.
        not_found = ask(tls, "GET", "/api/v1/no-such-route/")
        assert assert_problem(not_found, 404)["instance"] == "/api/v1/no-such-route/"
        assert not_found[1]["Access-Control-Allow-Origin"] == ORIGIN
        assert not_found[1]["Strict-Transport-Security"].startswith("max-age=")
        # Between the app's 16 KiB and nginx's 32 KiB, the app's own 414, with CORS headers.
        long_url = ask(tls, "GET", "/api/v1/tasks/?search=" + "a" * 20_000)
        assert_problem(long_url, 414)
        assert long_url[1]["Access-Control-Allow-Origin"] == ORIGIN
        # The collections are compressed; one task is not, its strong ETag kept for If-Match.
        bearer = {"Authorization": f"Bearer {RefreshToken.for_user(user).access_token}"}
        task = services.task_create(user=user, data={"title": "Pay rent"})
        gzip = {"Accept-Encoding": "gzip", **bearer}
        listed = ask(tls, "GET", "/api/v1/tasks/", **gzip)
        assert (listed[0], listed[1]["Content-Encoding"]) == (200, "gzip")
        one = ask(tls, "GET", f"/api/v1/tasks/{task.pk}/", **gzip)
        assert (one[0], one[1]["Content-Encoding"], one[1]["ETag"]) == (200, None, '"1"')

        plain_http = http.client.HTTPConnection("127.0.0.1", plain, timeout=10)
        plain_http.request("GET", "/api/v1/tasks/", headers={"Host": HOST})
        redirect = plain_http.getresponse()
        assert (redirect.status, redirect.getheader("Location")) == (
            301,
            f"https://{HOST}/api/v1/tasks/",
        )
        assert redirect.getheader("Server") == "nginx"


def _readme_paragraph_on_nginx_limits() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("Past nginx's limits")
    return text[start : text.index("```nginx", start)]


def test_nginx_s_own_414_and_431_over_http2_are_problems_or_readme_says_they_are_not(proxy):
    """README's block listens `443 ssl http2`: browsers and mobile HTTP stacks speak HTTP/2
    there. nginx 1.22 then ends the whole connection for a header field (the :path included)
    whose HPACK-encoded size passes large_client_header_buffers' 32k (error log: "client sent
    too large header field while processing HTTP/2 connection"); curl gets no answer at all. A
    40,000-byte URL of one letter Huffman-codes to ~25 KB and goes to the app."""
    curl = shutil.which("curl")
    if (
        curl is None
        or "HTTP2" not in subprocess.run([curl, "--version"], capture_output=True, text=True).stdout
    ):
        tool_missing("curl with HTTP/2 not found (apt-get install curl)")
    tls, _ = proxy(free_port())
    url = f"https://127.0.0.1:{tls}/api/v1/tasks/"
    cases = {
        414: [f"{url}?search=" + "a" * 60_000],
        431: ["-H", "X-Note: " + "a" * 60_000, url],
    }
    for status, arguments in cases.items():
        run = subprocess.run(
            [curl, "-sk", "--http2", "-H", f"Host: {HOST}", "-w", "\n%{http_code}", *arguments],
            capture_output=True,
            text=True,
            timeout=20,
        )
        body, _, code = run.stdout.rpartition("\n")
        if code == "000":  # no answer: the connection was ended
            assert "HTTP/2" in _readme_paragraph_on_nginx_limits(), (
                f"over HTTP/2 nginx ended the connection instead of its {status} problem, and "
                "README says its 414 and 431 are problems"
            )
            continue
        assert int(code) == status, body[:200]
        problem = json.loads(body)
        assert (problem["status"], problem["title"]) == (status, title_for(status))
