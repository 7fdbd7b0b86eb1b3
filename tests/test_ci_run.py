"""`.ci/run` on a fresh runner: what it installs, and how, before `make lint` and `make test`."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Stubs of the runner's tools, each logging its call: apt-get succeeds only under sudo or as
# root, as the real one (its lock file) does.
STUBS = {
    "id": 'echo "$STUB_UID"',
    "sudo": 'echo "sudo $*" >> "$STUB_LOG"; STUB_UID=0 exec "$@"',
    "apt-get": '[ "$STUB_UID" = 0 ] || { echo "denied apt-get $*" >> "$STUB_LOG"; exit 100; }\n'
    'echo "apt-get $*" >> "$STUB_LOG"',
    "make": 'echo "make $*" >> "$STUB_LOG"',
}


@pytest.mark.parametrize(("uid", "through_sudo"), [("1001", True), ("0", False)])
def test_ci_run_installs_its_tools_as_root_or_through_sudo(tmp_path, uid, through_sudo):
    # A hosted runner's user has sudo, not root: apt-get alone installed nothing, and under
    # CI=true the browser and wrk tests then failed.
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    bin_dir = tmp_path / "bin"  # none of the tools
    bin_dir.mkdir()
    for name, body in STUBS.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    for tool in ("bash", "dirname"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    log = tmp_path / "calls.log"
    env = {"PATH": str(bin_dir), "STUB_LOG": str(log), "STUB_UID": uid}

    done = subprocess.run(
        ["bash", str(tmp_path / ".ci" / "run")], env=env, capture_output=True, text=True
    )

    assert done.returncode == 0, done.stderr
    install = "apt-get install -y -qq chromium wrk nginx openssl curl"
    sudo = "sudo " if through_sudo else ""
    assert log.read_text().splitlines() == [
        *([f"{sudo}apt-get update -qq"] if through_sudo else []),
        "apt-get update -qq",
        *([f"{sudo}{install}"] if through_sudo else []),
        install,
        "make lint",
        "make test",
    ]
