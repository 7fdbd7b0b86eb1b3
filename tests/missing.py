"""What a test does when a tool it needs (not a Python package) is not installed."""

import os
from typing import NoReturn

import pytest


def tool_missing(message: str) -> NoReturn:
    """A skip on a developer's machine; a failure in CI, where .ci/run installs the tool."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
