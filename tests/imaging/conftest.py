from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from bench.ingest.synthetic import write_ct_series


@pytest.fixture(scope="session")
def small_ct(tmp_path_factory) -> Path:
    """A 6-slice 64x64 synthetic CT series (fictional patient)."""
    folder = tmp_path_factory.mktemp("small_ct")
    write_ct_series(folder, slices=6, rows=64, columns=64)
    return folder


@pytest.fixture(scope="session")
def small_ct_zip(small_ct, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("zips") / "study.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(small_ct.iterdir()):
            zf.write(f, f"CT/{f.name}")
    return path
