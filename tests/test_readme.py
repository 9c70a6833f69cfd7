"""The README documents every environment variable the settings read."""

from __future__ import annotations

import re

from tests.servers import ROOT


def test_every_environment_variable_is_in_the_readme():
    source = "".join(p.read_text() for p in (ROOT / "portal" / "settings").glob("*.py"))
    names = set(re.findall(r'env(?:\.[a-z]+|_secret)?\(\s*"([A-Z][A-Z0-9_]+)"', source))
    assert {"DATABASE_URL", "REDIS_URL", "LIGHTBOX_S3_BUCKET", "DJANGO_SECRET_KEY"} <= names
    readme = (ROOT / "README.md").read_text()
    missing = sorted(n for n in names if f"`{n}`" not in readme)
    assert missing == [], f"add these to the README's variable table: {missing}"


def test_quick_start_has_exactly_two_commands():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make run", "make test"]
