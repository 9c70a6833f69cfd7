"""pydicom's bundled test files, for tests: found locally (never downloaded) and read whole,
damaged or not."""

from __future__ import annotations

import os
import warnings
from typing import Any

import pydicom
import pytest
from pydicom.data import get_testdata_file


def pydicom_file(name: str) -> str:
    """The local path of pydicom's test file ``name``; the test is skipped when it is not here."""
    path = get_testdata_file(name, download=False)
    if not path or not os.path.isfile(path):
        pytest.skip(f"{name} is not present locally")
    return path


def read_dataset(src: Any) -> pydicom.Dataset:
    """The whole data set of ``src`` (a path or a file), pixels too, read however odd it is."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(src, force=True)
