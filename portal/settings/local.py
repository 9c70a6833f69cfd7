"""The embedded default: what `make run` and `manage.py` use when nothing else is named."""

from __future__ import annotations

from portal.settings.base import *  # noqa: F403
