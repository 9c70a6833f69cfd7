from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError


@pytest.fixture
def verify_audit():
    """verify_audit(*args) -> (exit code, output) of ``manage.py verify_audit``."""

    def run(*args: str) -> tuple[int, str]:
        out = StringIO()
        try:
            call_command("verify_audit", *args, stdout=out)
        except CommandError as exc:
            return exc.returncode, str(exc)
        return 0, out.getvalue()

    return run
