"""Renditions and downloads benchmark (issue 7, must show 4).

    .venv/bin/python -m bench.renditions [--size-mb 200] [--codec-slices 40] [--preview-slices 60]

On a generated synthetic CT study (512x512 16-bit slices of a body phantom: air, soft tissue,
lungs, spine, with noise; fictional patient) it prints:

- for each lossless codec (JPEG-LS, JPEG 2000, RLE): the compression ratio and the encode speed in
  MB/s of original bytes (encode alone, and encode plus the decode that verifies every pixel);
- the preview time per slice (decode, window, <= 1024 px, burned-in band, JPEG);
- the download throughput of the streamed original package (decrypting the blobs) from a real
  ASGI server (uvicorn, a subprocess), as a ratio to reading the same bytes (the stored blob
  files) from disk in the same run, and the server process's RSS before, at peak and the growth
  during the download (sampled from /proc every 10 ms).

Targets (issue 7): package >= 0.5 of the plain read's throughput, RSS growth < 50 MB during a
1 GB download (``--size-mb 1024``), a preview slice < 30 ms.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import harness  # noqa: E402
from bench.ingest.synthetic import ct_slice  # noqa: E402

SLICE_BYTES = 512 * 512 * 2
READ = 4 * 1024 * 1024  # both the download and the plain read use this buffer


def phantom(index: int, rng: np.random.Generator, size: int = 512) -> np.ndarray:
    """One slice of a body phantom in stored values (HU + 1024, 12 bits)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    cx = cy = size / 2
    hu = np.full((size, size), -1000.0, dtype=np.float32)
    body = ((x - cx) / (size * 0.42)) ** 2 + ((y - cy) / (size * 0.32)) ** 2 <= 1
    hu[body] = 40
    phase = index / 40
    for side in (-1, 1):
        lung = ((x - cx - side * size * 0.18) / (size * 0.13)) ** 2 + ((y - cy + size * 0.02) / (size * 0.2)) ** 2 <= 1
        hu[lung] = -820 + 30 * np.sin(phase + side)
    spine = ((x - cx) / (size * 0.05)) ** 2 + ((y - cy - size * 0.2) / (size * 0.05)) ** 2 <= 1
    hu[spine] = 700
    hu += rng.normal(0, 12, hu.shape).astype(np.float32) * body
    return np.clip(hu + 1024, 0, 4095).astype("<u2")


def write_study(folder: Path, slices: int) -> list[Path]:
    from pydicom.uid import generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    study_uid, series_uid = generate_uid(), generate_uid()
    paths = []
    for i in range(slices):
        ds = ct_slice(study_uid=study_uid, series_uid=series_uid, index=i, seed=phantom(i, rng).tobytes())
        ds.WindowCenter, ds.WindowWidth = 40, 400
        path = folder / f"CT{i + 1:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def bench_codecs(paths: list[Path]) -> dict:
    import pydicom

    from apps.renditions import encoders

    out = {}
    datas = [p.read_bytes() for p in paths]
    total = sum(len(d) for d in datas)
    for codec, uid in encoders.LOSSLESS_CODECS.items():
        t = time.perf_counter()
        sizes = 0
        for data in datas:
            ds = pydicom.dcmread(io.BytesIO(data))
            ds.compress(uid, ds.pixel_array, generate_instance_uid=False)
            buf = io.BytesIO()
            ds.save_as(buf, enforce_file_format=True)
            sizes += buf.tell()
        encode = time.perf_counter() - t
        t = time.perf_counter()
        for data in datas:
            encoders.lossless_encode(data, codec)
        verified = time.perf_counter() - t
        out[codec] = {"ratio": total / sizes, "encode_mb_s": total / encode / 1e6,
                      "encode_and_verify_mb_s": total / verified / 1e6}
    return out


def bench_preview(paths: list[Path]) -> dict:
    from apps.renditions import encoders

    times = []
    for p in paths:
        data = p.read_bytes()
        t = time.perf_counter()
        encoders.preview_jpeg(data)
        times.append((time.perf_counter() - t) * 1000)
    return {"median_ms": statistics.median(times), "p95_ms": sorted(times)[int(len(times) * 0.95) - 1],
            "slices": len(times)}


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _server(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = harness.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "portal.asgi:application", "--host", "127.0.0.1",
                             "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    harness.wait_answering(proc, f"{base}/healthz", timeout=60)
    return proc, base


def _download(url: str, headers: dict[str, str], sink_limit: int | None = None) -> tuple[int, float, dict]:
    request = urllib.request.Request(url, headers=headers)
    buffer = memoryview(bytearray(READ))
    t = time.perf_counter()
    got = 0
    with urllib.request.urlopen(request, timeout=600) as response:
        info = {k.title(): v for k, v in response.headers.items()}  # httptools sends lower case
        info["ttfb"] = time.perf_counter() - t
        while n := response.readinto(buffer):
            got += n
            if sink_limit is not None and got >= sink_limit:
                break
    return got, time.perf_counter() - t, info


def evict(paths: list[Path]) -> bool:
    """Drop the files from the page cache (flushed first), so that the next read comes from the
    disk. Returns False where the platform cannot."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def plain_read(paths: list[Path]) -> tuple[int, float]:
    buffer = memoryview(bytearray(READ))
    t = time.perf_counter()
    read = 0
    for p in paths:
        with open(p, "rb", buffering=0) as fh:
            while n := fh.readinto(buffer):
                read += n
    return read, time.perf_counter() - t


def bench_download(inst: harness.Instance, study_id: str, *, cold: bool) -> dict:
    """One download of the study's original package, and a plain read of the stored (encrypted)
    blob files, both from disk (``cold``: page cache dropped before each) or both from memory."""
    blobs = [p for p in inst.storage_root.rglob("*") if p.is_file()]
    proc, base = _server(inst.env)
    try:
        headers = inst.headers()
        url = f"{base}/studies/{study_id}/download/?rendition=original"
        # warm-up: the first request imports and connects; the package rows are made here
        _download(url, {**headers, "Range": "bytes=0-1023"})
        if cold:
            evict(blobs)
        else:
            plain_read(blobs)
        before = _rss_kb(proc.pid)
        peak, stop = [before], threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], _rss_kb(proc.pid))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        got, seconds, info = _download(url, headers)
        stop.set()
        sampler.join()
        assert got == int(info["Content-Length"]), "short download"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    if cold:
        evict(blobs)
    read, disk = plain_read(blobs)
    package_mb_s = got / seconds / 1e6
    disk_mb_s = read / disk / 1e6
    return {"cold": cold, "package_bytes": got, "package_mb_s": package_mb_s, "disk_bytes": read,
            "disk_mb_s": disk_mb_s, "ratio": package_mb_s / disk_mb_s, "rss_before_mb": before / 1024,
            "rss_peak_mb": peak[0] / 1024, "rss_growth_mb": (peak[0] - before) / 1024,
            "ttfb_ms": info["ttfb"] * 1000}


def resume_check(inst: harness.Instance, study_id: str, folder: Path) -> dict:
    """Over uvicorn: a download cut at half, resumed with Range + If-Range, joins to the same
    sha256 as a full download; the zip opens and its manifest's sha256s match its files."""
    import hashlib
    import zipfile

    proc, base = _server(inst.env)
    try:
        headers = inst.headers()
        url = f"{base}/studies/{study_id}/download/?rendition=lossless"
        full = hashlib.sha256()
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=600) as response:
            etag, total = response.headers["ETag"], int(response.headers["Content-Length"])
            while chunk := response.read(READ):
                full.update(chunk)
        target = folder / "resumed.zip"
        with open(target, "wb") as out:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=600) as response:
                while out.tell() < total // 2 and (chunk := response.read(min(READ, total // 2 - out.tell()))):
                    out.write(chunk)
            # the connection is closed here, half way
            ranged = {**headers, "Range": f"bytes={out.tell()}-", "If-Range": etag}
            with urllib.request.urlopen(urllib.request.Request(url, headers=ranged), timeout=600) as response:
                assert response.status == 206, response.status
                while chunk := response.read(READ):
                    out.write(chunk)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    joined = hashlib.sha256(target.read_bytes()).hexdigest()
    with zipfile.ZipFile(target) as zf:
        bad = zf.testzip()
        manifest = next(n for n in zf.namelist() if n.endswith("MANIFEST.txt"))
        rows = [line.split("  ") for line in zf.read(manifest).decode().split("path):\n", 1)[1].splitlines()
                if line.count("  ") >= 3]
        mismatched = [r[-1] for r in rows if hashlib.sha256(zf.read(r[-1])).hexdigest() != r[0]]
    audit = inst.shell_json(
        "import json; from apps.audit.models import AuditEvent as E; "
        "print('RESULT' + json.dumps([[e.action, e.details.get('bytes_sent'), e.details.get('range_start')] "
        "for e in E.objects.filter(action__startswith='download.', details__rendition='lossless').order_by('pk')]))")
    return {"same_sha256": joined == full.hexdigest(), "zip_ok": bad is None, "files": len(rows),
            "manifest_mismatches": len(mismatched), "audit": audit}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--codec-slices", type=int, default=40)
    parser.add_argument("--preview-slices", type=int, default=60)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    slices = max(1, args.size_mb * 1024 * 1024 // SLICE_BYTES)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.test")
    import django

    django.setup()
    tmp = Path(tempfile.mkdtemp(prefix="lightbox-bench-renditions-"))
    print(f"generating {slices} slices ({slices * SLICE_BYTES / 2**20:.0f} MiB of pixels) in {tmp}", flush=True)
    paths = write_study(tmp / "CT", slices)
    codecs = bench_codecs(paths[: args.codec_slices])
    for codec, r in codecs.items():
        print(f"lossless {codec:9s} ratio {r['ratio']:.2f}:1  encode {r['encode_mb_s']:.1f} MB/s  "
              f"encode+verify {r['encode_and_verify_mb_s']:.1f} MB/s", flush=True)
    preview = bench_preview(paths[: args.preview_slices])
    print(f"preview    median {preview['median_ms']:.1f} ms/slice  p95 {preview['p95_ms']:.1f} ms "
          f"({preview['slices']} slices)", flush=True)

    inst = harness.prepare(tmp / "var", LIGHTBOX_RENDITIONS_AFTER_INGEST="false")
    t = time.perf_counter()
    inst.manage("ingest", str(tmp / "CT"), "--org", "bench", timeout=3600)
    print(f"ingested in {time.perf_counter() - t:.1f} s", flush=True)
    study_id = inst.shell_json("from apps.imaging.models import Study; import json; "
                               "print('RESULT' + json.dumps(str(Study.objects.get().public_id)))")
    downloads = []
    for cold in (True, False):
        d = bench_download(inst, study_id, cold=cold)
        downloads.append(d)
        where = "from disk (page cache dropped)" if cold else "from memory (page cache warm)"
        print(f"download {where}: package {d['package_bytes'] / 1e6:.0f} MB at {d['package_mb_s']:.0f} MB/s "
              f"(first byte after {d['ttfb_ms']:.0f} ms); plain read of the stored files at "
              f"{d['disk_mb_s']:.0f} MB/s; ratio {d['ratio']:.2f}", flush=True)
        print(f"  server RSS before {d['rss_before_mb']:.0f} MB, peak {d['rss_peak_mb']:.0f} MB, "
              f"growth {d['rss_growth_mb']:.1f} MB", flush=True)
    resume = resume_check(inst, study_id, tmp)
    print(f"resume over uvicorn: half, then Range: same sha256 as a full download: {resume['same_sha256']}; "
          f"zip opens: {resume['zip_ok']}; manifest matches {resume['files']} files "
          f"({resume['manifest_mismatches']} mismatches)", flush=True)
    print(f"  audited transfers (action, bytes sent, range start): {resume['audit']}", flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.1f}" if load is not None else "", flush=True)
    print("RESULT " + json.dumps({"slices": slices, "codecs": codecs, "preview": preview, "downloads": downloads,
                                  "resume": resume, "load": load}))
    if not args.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
