"""The load generator's script (bench/wrk/scenario.lua) run by the real wrk against a stub HTTP
server: the report's error counts come from what it reads back from wrk's threads."""

import http.server
import json
import shutil
import subprocess
import sys
import threading

import pytest

from bench.prepare import lua
from bench.run import SCRIPT
from tests.missing import tool_missing


@pytest.fixture(scope="module")
def wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        tool_missing("wrk not found (apt-get install wrk)")
    return path


class Stub(http.server.ThreadingHTTPServer):
    daemon_threads = True
    status = 200
    body = b"{}"

    def handle_error(self, request, client_address) -> None:
        # wrk resets its keep-alive connections when its time is up: no traceback in the log.
        if not isinstance(sys.exc_info()[1], ConnectionResetError):
            super().handle_error(request, client_address)


class Answer(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as gunicorn behind wrk

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def stub():
    server = Stub(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def data(tmp_path):
    user = {"token": "t", "ids": ["a"], "recurring": [], "siblings": ["a", "b"], "list": "l"}
    user["bulk"] = [["a", "b"], ["c", "d"]]  # a batch for each of wrk's two threads
    path = tmp_path / "data.lua"
    path.write_text("return " + lua({"users": [user], "heavy": {"token": "h"}, "bulk_size": 2}))
    return path


def drive(wrk: str, stub: Stub, scenario: str, data) -> dict:
    url = f"http://127.0.0.1:{stub.server_address[1]}"
    command = [wrk, "-t2", "-c2", "-d1s", "-s", str(SCRIPT), url, "--", scenario, str(data), "2"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)
    (line,) = [line for line in out.stdout.splitlines() if line.startswith("BENCH_RESULT ")]
    result = json.loads(line.removeprefix("BENCH_RESULT "))
    assert result["requests"] > 0
    return result


def test_every_non_2xx_answer_is_counted_by_status(wrk, stub, data):
    stub.status, stub.body = 503, b'{"status": 503}'

    result = drive(wrk, stub, "me", data)

    assert result["non_2xx"] == result["requests"]
    assert result["status"] == {"503": result["requests"]}


def test_two_hundreds_are_not_errors(wrk, stub, data):
    result = drive(wrk, stub, "get", data)

    assert (result["non_2xx"], result["status"], result["short"]) == (0, {}, 0)


@pytest.mark.parametrize(("updated", "short"), [(2, False), (1, True), (0, True)])
def test_a_bulk_answer_that_completed_less_than_its_batch_is_counted(
    wrk, stub, data, updated, short
):
    stub.body = json.dumps({"updated": updated}).encode()

    result = drive(wrk, stub, "bulk_complete_100", data)

    assert result["non_2xx"] == 0
    assert result["short"] == (result["requests"] if short else 0)
