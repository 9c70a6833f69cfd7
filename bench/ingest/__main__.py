"""Ingest benchmark: ``python -m bench.ingest [--slices 400] [--scale 1 4] [--follow on|off|both]
[--rate MB/s] [--database-url URL]``.

Generates a synthetic CT study (512x512 16-bit slices), zips it (stored), makes the baseline (a
plain copy of the same slice files, one by one with fsync, in the same folder), then uploads the
zip through tus (tuspy, 16 MiB chunks as the browser page, sha1 checksum on each) to gunicorn
with uvicorn workers on loopback and waits until the study is ready. Prints end-to-end MB/s
(upload, parse, dedup, encrypt, store, index), the ratio to the plain copy, the time from the
last byte to ready, the CPU seconds and the peak RSS of the server and worker processes.
With REDIS_URL set, ingest runs in a Celery worker subprocess (Redis broker), which with the
follower on also reads the zip while it arrives (apps.imaging.follow); otherwise in the server
process (eager). ``--rate`` paces the client as a slower link would.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from bench.ingest import harness
from bench.ingest.synthetic import write_ct_series


def _tree(pid: int) -> list[int]:
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return pids
    for child in children:
        pids += _tree(int(child))
    return pids


def _peak_rss_mb(pid: int) -> float:
    """Largest peak RSS (VmHWM) of any process in the tree under ``pid``."""
    best = 0
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    best = max(best, int(line.split()[1]))
        except OSError:
            continue
    return best / 1024


def _cpu_split(pid: int) -> tuple[float, float]:
    """CPU seconds (user, system) used so far by the processes of the tree under ``pid``."""
    user = system = 0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user, system = user + int(fields[11]), system + int(fields[12])
    return user / os.sysconf("SC_CLK_TCK"), system / os.sysconf("SC_CLK_TCK")


def _machine_cpu() -> tuple[float, float]:
    """CPU seconds of the whole machine so far: (busy, idle), all cores, from /proc/stat."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK"), idle / os.sysconf("SC_CLK_TCK")


def plain_copy(paths: list[Path], dest: Path) -> float:
    """Seconds to copy the files one by one with fsync (the baseline)."""
    dest.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for p in paths:
        with open(p, "rb") as src, open(dest / p.name, "wb") as out:
            shutil.copyfileobj(src, out, 1024 * 1024)
            out.flush()
            os.fsync(out.fileno())
    return time.perf_counter() - start


def start_gunicorn(inst: harness.Instance, workers: int) -> tuple[subprocess.Popen, str]:
    port = harness.free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "portal.asgi:application", "-k", "uvicorn_worker.UvicornWorker",
         "-w", str(workers), "-b", f"127.0.0.1:{port}", "--timeout", "600", "--log-level", "warning"],
        cwd=harness.ROOT, env=inst.env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    harness.wait_answering(proc, f"{base}/healthz", timeout=60)
    return proc, base


def run(slices: int, workers: int, work: Path, database_url: str = "", follow: bool = True,
        rate: float | None = None) -> dict:
    study_dir = work / f"study-{slices}"
    t = time.perf_counter()
    paths = write_ct_series(study_dir / "CT", slices=slices)
    archive = study_dir / "study.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for p in paths:
            zf.write(p, f"CT/{p.name}")
    nbytes = sum(p.stat().st_size for p in paths)
    gen = time.perf_counter() - t
    # the baseline first. Nothing is deleted until every run is done (main): on a file system
    # without a journal (these machines), creating files right after many were deleted is
    # slower (ext4 skips recently freed inodes), and no measurement should pay for another's
    # clean-up. Each starts with nothing left to write back (os.sync), or it would wait for the
    # one before
    os.sync()
    copy_s = plain_copy(paths, work / f"copy-{slices}")
    os.sync()
    redis = os.environ.get("REDIS_URL", "")
    extra = {"REDIS_URL": redis} if redis else {}
    if database_url:
        extra["DATABASE_URL"] = database_url
    extra["LIGHTBOX_INGEST_FOLLOW"] = "true" if follow else "false"
    inst = harness.prepare(work / f"var-{slices}", **extra)
    server, base = start_gunicorn(inst, workers)
    worker = harness.start_worker(inst) if redis else None
    try:
        if worker is not None:
            time.sleep(3)  # let the worker connect to the broker
        procs = {"server": server.pid, **({"worker": worker.pid} if worker is not None else {})}
        cpu0 = {name: _cpu_split(pid) for name, pid in procs.items()}
        machine0 = _machine_cpu()
        import tusclient.client  # noqa: F401 - the client's own import (0.2 s) is not the upload

        t0 = time.perf_counter()
        url = harness.tus_upload(base, inst, archive, rate=rate,
                                 **({"chunk_size": 4 * 1024 * 1024} if rate else {}))
        t_upload = time.perf_counter() - t0
        status = harness.wait_for_ingest(url, inst, timeout=3600)
        e2e = time.perf_counter() - t0
        machine = tuple(b - a for a, b in zip(machine0, _machine_cpu(), strict=True))
        cpu = {name: tuple(b - a for a, b in zip(cpu0[name], _cpu_split(pid), strict=True))
               for name, pid in procs.items()}
        cpu.setdefault("worker", (0.0, 0.0))
        server_rss = _peak_rss_mb(server.pid)
        worker_rss = _peak_rss_mb(worker.pid) if worker is not None else None
    finally:
        harness.stop(worker)
        harness.stop(server)
    job = status["job"]
    assert job["state"] == "done" and job["files_ingested"] == slices, job
    mb = nbytes / 1e6
    return {"slices": slices, "MB": mb, "generate_s": gen, "copy_MBps": mb / copy_s, "upload_s": t_upload,
            "after_last_byte_s": e2e - t_upload,
            "e2e_s": e2e, "e2e_MBps": mb / e2e, "ratio": (mb / e2e) / (mb / copy_s),
            "server_cpu_s": sum(cpu["server"]), "worker_cpu_s": sum(cpu["worker"]),
            "server_cpu_user_sys_s": cpu["server"], "worker_cpu_user_sys_s": cpu["worker"],
            "machine_busy_s": machine[0], "machine_idle_s": machine[1],
            "server_peak_rss_MB": server_rss, "worker_peak_rss_MB": worker_rss,
            "mode": ("celery worker (redis)" if redis else "eager (in the server process)")
                    + (", follower on" if follow and redis else ", follower off")
                    + (f", client paced at {rate:g} MB/s in 4 MiB chunks" if rate else "")
                    + (", PostgreSQL" if database_url.startswith("postgres") else ", SQLite")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=400, help="slices at scale 1 (400 = 200 MiB)")
    parser.add_argument("--scale", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--follow", choices=["on", "off", "both"], default="on",
                        help="ingest a zip's entries while the upload arrives (needs REDIS_URL: a worker); "
                             "'both' measures each size with and without, in the same run")
    parser.add_argument("--rate", type=float, default=None,
                        help="pace the upload at this many MB/s (a slower link); the figure that matters then "
                             "is the time from the last byte to ready")
    parser.add_argument("--work-dir", type=Path, default=harness.ROOT / "var",
                        help="where the study, the plain copy and the instance (database, storage, staging) "
                             "go (default: var/, the portal's own storage folder, on the same file system "
                             "for the copy and the portal)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--database-url", default="", help="an empty database to use (default: SQLite in the "
                                                           "work folder); it is migrated, not flushed")
    args = parser.parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=args.work_dir))
    rows = []
    try:
        modes = {"on": [True], "off": [False], "both": [True, False]}[args.follow]
        runs = [(scale, follow) for scale in args.scale for follow in modes]
        for n, (scale, follow) in enumerate(runs):
            run_dir = work / f"run-{n}"  # each run's files stay until all are done (see run)
            run_dir.mkdir()
            row = run(args.slices * scale, args.workers, run_dir, args.database_url, follow, args.rate)
            rows.append(row)
            print(f"scale {scale}: {row['slices']} slices, {row['MB']:.0f} MB ({row['mode']})")
            print(f"  plain copy (file by file, fsync): {row['copy_MBps']:.0f} MB/s")
            print(f"  end to end (tus upload -> ready): {row['e2e_s']:.1f} s = {row['e2e_MBps']:.0f} MB/s "
                  f"(upload {row['upload_s']:.1f} s, then {row['after_last_byte_s']:.2f} s to ready), "
                  f"ratio to plain copy {row['ratio']:.2f}")
            print(f"  CPU (user + system): server {row['server_cpu_s']:.1f} s "
                  "({:.1f} + {:.1f})".format(*row["server_cpu_user_sys_s"])
                  + (f", worker {row['worker_cpu_s']:.1f} s "
                     "({:.1f} + {:.1f})".format(*row["worker_cpu_user_sys_s"]) if row["worker_peak_rss_MB"] else ""))
            print(f"  whole machine during it: {row['machine_busy_s']:.1f} s busy, "
                  f"{row['machine_idle_s']:.1f} s idle (of {os.cpu_count()} cores x {row['e2e_s']:.1f} s; "
                  "the client, PostgreSQL, Redis and the kernel included)")
            print(f"  peak RSS: server {row['server_peak_rss_MB']:.0f} MB"
                  + (f", worker {row['worker_peak_rss_MB']:.0f} MB" if row["worker_peak_rss_MB"] else ""))
            sys.stdout.flush()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
