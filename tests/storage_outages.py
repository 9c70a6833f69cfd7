"""Storage that cannot be reached, for real: S3-compatible storage at a port nothing listens on."""

from __future__ import annotations

S3_UNREACHABLE = {
    "BACKEND": "storages.backends.s3.S3Storage",
    "OPTIONS": {
        "bucket_name": "lightbox-studies",
        "region_name": "us-east-1",
        "access_key": "testing",
        "secret_key": "testing",
        "endpoint_url": "http://127.0.0.1:1",  # connection refused
        "file_overwrite": False,
    },
}
