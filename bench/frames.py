"""Viewer frames benchmark: 512x512 16-bit CT frames through the frame endpoint's render path.

    .venv/bin/python bench/frames.py [--slices 20] [--repeat 5] [--noise 20]

Stores ``--slices`` synthetic 512x512 16-bit CT slices (bench/frames_synthetic.py: phantom plus
seeded Gaussian noise of ``--noise`` HU, so PNG sees texture like a real scan) as encrypted blobs
in a throw-away SQLite database, then times per frame, each slice ``--repeat`` times:

1. bare decode: ``pydicom.dcmread`` of the plaintext bytes (in memory) + ``.pixel_array``;
2. render (diagnostic): ``apps.viewer.services.frame_render`` with quality=diagnostic, the
   endpoint's render path: open and decrypt the blob, parse, decode the frame, Modality LUT,
   window to 8-bit, lossless PNG;
3. render (preview): the same with quality=preview (JPEG q88) and quality=low (JPEG, 256 px);
4. endpoint: a GET of the frame URL through Django (session, policy checks, render), in-process.

Prints the median time per frame of each and its ratio to the bare decode measured in the same
run. Not a test: the figures go to docs/performance.md (viewer section).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _setup_django(workdir: str) -> None:
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir}/frames.sqlite3"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.test")
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                                                          "OPTIONS": {"location": workdir}}}
    call_command("migrate", verbosity=0, interactive=False)


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--noise", type=float, default=20.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lightbox-frames-") as workdir:
        _setup_django(workdir)
        import pydicom
        from django.test import Client
        from django.urls import reverse

        from apps.imaging.blobs import open_blob
        from apps.organizations.models import Role
        from apps.viewer import services
        from bench.frames_synthetic import store_ct_phantom
        from tests.factories import CaseFactory, OrganizationFactory, StudyFactory, member

        org = OrganizationFactory(name="Bench Hospital", slug="bench")
        user = member(org, Role.RADIOLOGIST, email="bench@bench.example")
        case = CaseFactory(organization=org, created_by=user, responsible_clinician=user)
        study = StudyFactory(organization=org, case=case)
        instances = store_ct_phantom(study=study, slices=args.slices, rows=512, columns=512, noise_hu=args.noise)
        plaintexts = {inst.pk: open_blob(inst.blob).read() for inst in instances}
        client = Client()
        client.force_login(user)

        timings: dict[str, list[float]] = {"bare": [], "diagnostic": [], "preview": [], "low": [], "endpoint": []}
        sizes: dict[str, list[int]] = {"diagnostic": [], "preview": [], "low": []}
        requests = {q: services.FrameRequest(quality=q) for q in ("diagnostic", "preview", "low")}
        # warm-up: imports, codecs, first queries
        services.frame_render(src=instances[0], request=requests["diagnostic"])
        client.get(reverse("viewer:frame", kwargs={"instance_id": instances[0].public_id}) + "?quality=diagnostic")
        for _ in range(args.repeat):
            for inst in instances:
                start = time.perf_counter()
                arr = pydicom.dcmread(io.BytesIO(plaintexts[inst.pk])).pixel_array
                timings["bare"].append(time.perf_counter() - start)
                assert arr.shape == (512, 512) and arr.dtype.itemsize == 2
                for quality, wanted in requests.items():
                    start = time.perf_counter()
                    rendered = services.frame_render(src=inst, request=wanted)
                    timings[quality].append(time.perf_counter() - start)
                    sizes[quality].append(len(rendered.body))
                url = reverse("viewer:frame", kwargs={"instance_id": inst.public_id}) + "?quality=diagnostic"
                start = time.perf_counter()
                response = client.get(url)
                timings["endpoint"].append(time.perf_counter() - start)
                assert response.status_code == 200 and response["Content-Type"] == "image/png"

        bare = _median_ms(timings["bare"])
        print(f"frames: {args.slices} slices 512x512 16-bit CT x {args.repeat} runs (noise {args.noise:g} HU)")
        print(f"  pydicom bare decode (dcmread + pixel_array, in memory): median {bare:.2f} ms/frame")
        labels = {"diagnostic": "render diagnostic (decrypt+decode+window+PNG)",
                  "preview": "render preview (JPEG q88, 512 px)", "low": "render low (JPEG q60, 256 px)",
                  "endpoint": "endpoint GET diagnostic (policy + render)"}
        for key, label in labels.items():
            median = _median_ms(timings[key])
            size = f", {statistics.median(sizes[key]) / 1024:.0f} KiB" if key in sizes else ""
            print(f"  {label}: median {median:.2f} ms/frame, {median / bare:.1f}x bare decode{size}")


if __name__ == "__main__":
    main()
