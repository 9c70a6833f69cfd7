"""Download packages: a zip of a study's (or a whole case's) rendition, streamed.

Why a writer of our own rather than zipstream-ng: a resumed download (HTTP Range) must start at
any byte without re-reading, decrypting and CRC-ing everything before it, and the bytes must be
identical on every request (zipstream-ng stamps the current time and computes each CRC while
streaming, behind data descriptors). Here every file's size and CRC-32 are known from its
RenditionFile row, so the whole layout (local headers, data, central directory, zip64 records
when needed) is computed before the first byte: the exact Content-Length, a strong ETag, and a
Range maps to a few literal segments plus a seek into one or more encrypted blobs. Files are
stored, not deflated: DICOM and JPEG hardly deflate and the length must be known up front.
Memory stays at one blob chunk (1 MiB) whatever the package size.

Naming (``package_name``): ``YYYY-MM-DD_<Modality>[-<BodyRegion>]_V<version>`` plus ``_DeID`` when
every file of it says Patient Identity Removed = YES and it is so (``encoders.identity_verified``:
nothing the de-identification profile would remove is left, nothing it would exclude the file for,
burned-in text said or likely or a screen save, and no Retain UIDs Option; the claim alone is not
trusted).
Several modalities or body regions are joined with "+" in alphabetical order
(``CT+PT-Abdomen+Chest``); the date is the earliest study date ("undated" without one), the
version the highest study version; a modality missing is ``OT``. Without any Body Part Examined
the region is left out (``2026-01-01_CT_V1``), not named otherwise: never by the study's
description, free text that may name the patient (the de-identification profile removes it:
``apps.deid.profile.TEXT_KEPT``), nor as "Unspecified", which reads like one. A whole case's
package is named as a case's: ``Case-<short id>_`` (the first 8
hex digits of the case's public id, which its address shows already) before the name of its
studies (``Case-1a2b3c4d_2026-01-01_CT-Chest_V1``), so that it is neither taken for one study's
package nor holds its study's folder under a folder of the same name. Never the case's title:
free text typed by staff, which may name the patient. A package ends in its rendition's name
(``rendition_suffix``): ``_Preview`` or ``_Education`` for a lossy one, so that its file (and
folder) cannot be taken for the diagnostic original's, ``_Lossless`` for the lossless-compressed
copy and ``_Original`` for the diagnostic original, so that the two diagnostic renditions' zips
(and folders), which would otherwise bear the very same name, are told apart without opening them,
and the original's says what it is as the others' do.

The education package holds, for each key image, the education file's labelled JPEG image
(``RenditionFile.image_blob``: what a phone, a tablet or a home computer opens, the "EDUCATION
COPY - NOT FOR DIAGNOSIS" band burned in), never its DICOM file (which they cannot open, and
whose header names the patient), and a README.txt saying what the pictures are, in the language
of whoever asks (the request's: a patient's own), so its bytes are the same for the same asker.

Language: README.txt and MANIFEST.txt follow the asker's language (the request's, when the
package is built: ``study_package``, ``case_package``). The manifest's labels, the files' labels
and the reasons a file was left out are translated; its values (names, paths, sha256s, sizes,
dates, modalities) are not, and each file's row keeps its form (``<sha256>  <bytes>  <label>
<path>``), so a script still checks the files against it. The package's bytes (and so its ETag)
are the same for the same asker's language: a resume in another language gets the whole package.
The de-identified exports' manifest (``package_finish``) follows the same rule. The package's and
folders' names (``..._Education``, ``S001_CT``, ``ED00001.jpg``) stay ASCII English: stable names
that every unzip tool, file system and support conversation reads the same, whoever downloaded
them. The band burned into the pictures is one fixed English text
(``encoders.EDUCATION_BAND_TEXT``), which the README quotes and explains in the asker's language.

Layout::

    <name>/MANIFEST.txt
    <name>/README.txt   (education packages)
    <name>/S<series number, 3 digits>_<modality>/<IM|PV|ED><index, 5 digits>.<dcm|jpg>
    case packages: Case-<short id>_<name>/MANIFEST.txt and Case-<short id>_<name>/<study name>/S.../...
"""

from __future__ import annotations

import bisect
import hashlib
import os
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from cryptography.exceptions import InvalidTag
from django.core.files.storage import default_storage
from django.utils import timezone, translation
from django.utils.functional import lazy
from django.utils.translation import gettext, gettext_lazy, ngettext

from apps.imaging.blobs import AlteredBlobRead, iter_blob
from apps.imaging.checksums import crc32
from apps.imaging.models import Blob, Instance, Study
from apps.renditions.encoders import EDUCATION_BAND_TEXT
from apps.renditions.models import Kind, Label, RenditionFile, Status, label_for

READ_SIZE = 1024 * 1024
_ZIP64 = 0xFFFFFFFF
_PREFIX = {Kind.ORIGINAL: "IM", Kind.LOSSLESS: "IM", Kind.PREVIEW: "PV", Kind.EDUCATION: "ED"}
LAYOUT_VERSION = "1"


# ----------------------------------------------------------------------------- naming

def _token(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", value)


def _region(value: str) -> str:
    words = re.split(r"[^A-Za-z0-9]+", value.strip())
    return "".join(w[:1].upper() + w[1:].lower() for w in words if w)


def package_name(studies: list[Study], *, body_parts: set[str] | None = None, deidentified: bool = False,
                 dated: date | None = None, case=None) -> str:
    """The package name of one or more studies (see the module docstring for the rule).
    ``body_parts`` adds the series' Body Part Examined values to the studies' own; ``dated``
    replaces the study date (a de-identified export is named by the day it was made, so its name
    does not put back the date the profile removed); ``case``: the name of that case's package
    (``Case-<short id>_...``; its public id only, never its title)."""
    dates = sorted(s.study_date for s in studies if s.study_date)
    day = dated.isoformat() if dated else dates[0].isoformat() if dates else "undated"
    modalities = sorted({_token(m).upper() for s in studies for m in s.modality_list if _token(m)}) or ["OT"]
    regions = {_region(s.body_part_examined) for s in studies if s.body_part_examined}
    regions |= {_region(b) for b in body_parts or () if b}
    regions.discard("")
    version = max((s.version for s in studies), default=1)
    # no region known: none named (the description is free text, never in a name)
    region = f"-{'+'.join(sorted(regions))}" if regions else ""
    name = f"{day}_{'+'.join(modalities)}{region}_V{version}"
    if case is not None:
        name = f"Case-{case.public_id.hex[:8]}_{name}"
    return name + ("_DeID" if deidentified else "")


#: the end of a package's name for each rendition (``package_name`` gives the same name to every
#: rendition of a study: a preview downloaded beside the original, or forwarded by a patient, would
#: otherwise look like the original, and the lossless copy's zip would bear the original's very
#: name; the original's says what it is too, as its MANIFEST does, "Diagnostic original")
_RENDITION_SUFFIX = {Kind.ORIGINAL: "_Original", Kind.LOSSLESS: "_Lossless", Kind.PREVIEW: "_Preview",
                     Kind.EDUCATION: "_Education"}


def rendition_suffix(kind: str) -> str:
    """``_Original``/``_Lossless``/``_Preview``/``_Education`` for a package's (and a case
    package's study folder's) name."""
    return _RENDITION_SUFFIX.get(kind, "")


#: the end of the name of a lossless package (or of a case package's study folder) whose every
#: image is an original lossy-compressed at the source: no lossless copy is made of such an image
#: (``encoders.lossless_encode``), the original stands in (``_files_for``), and the name says so
#: rather than "_Lossless" over images none of which is a lossless copy
LOSSY_SOURCE_SUFFIX = "_LossySource"


def _lossy_source_only(kind: str, pairs) -> bool:
    """Whether a lossless package's files (``_files_for``'s pairs) are all originals that were
    lossy-compressed at the source, standing in for the lossless copies none can be made of."""
    return kind == Kind.LOSSLESS and bool(pairs) and all(f.kind == Kind.ORIGINAL and f.source_lossy
                                                         for _inst, f in pairs)


def _suffix(kind: str, pairs) -> str:
    """The end of the name of a package (or of a case package's study folder) of these files:
    its rendition's (``rendition_suffix``), ``_LossySource`` for a lossless one all of lossy
    originals (``LOSSY_SOURCE_SUFFIX``)."""
    return LOSSY_SOURCE_SUFFIX if _lossy_source_only(kind, pairs) else rendition_suffix(kind)


# ----------------------------------------------------------------------------- zip layout

def _dos(when: datetime) -> tuple[int, int]:
    when = max(when, datetime(1980, 1, 1, tzinfo=when.tzinfo))
    return ((when.hour << 11) | (when.minute << 5) | (when.second // 2),
            ((when.year - 1980) << 9) | (when.month << 5) | when.day)


@dataclass
class Entry:
    """One file of a package: literal bytes (the manifest) or a blob."""

    path: str
    size: int
    crc32: int
    sha256: str
    label: str
    blob: Blob | None = None
    data: bytes | None = None
    code: str = ""          # the Label value; "fallback" for an original standing in for a lossless copy
    source_lossy: bool = False  # its original was already lossy-compressed (``RenditionFile.source_lossy``)
    stand_in: bool = False  # an original standing in for the lossless copy of its image (``_files_for``)
    #: the image whose stored file ``blob`` is (its original or a rendition of it): named when the
    #: blob fails its integrity check while sent (``AlteredBlobRead``)
    instance: Instance | None = None


@dataclass
class Segment:
    offset: int
    length: int
    data: bytes | None = None
    blob: Blob | None = None
    instance: Instance | None = None  # the entry's (``Entry.instance``)


@dataclass
class Package:
    name: str
    label: str
    entries: list[Entry]
    missing: list[tuple[str, str]] = field(default_factory=list)   # (what, why)
    deidentified: bool = False
    #: how many of a lossless package's images are originals received lossy standing in for the
    #: lossless copy none is made of (``lossy_source_of``): "all", "some" or "" (none; any other kind)
    lossy_source: str = ""
    #: it holds an image whose pixels may identify its patient (``Instance.pixels_may_identify``):
    #: one that ``_files_for``'s ``withhold`` did not leave out
    identifying: bool = False
    segments: list[Segment] = field(default_factory=list)
    size: int = 0
    etag: str = ""

    @property
    def filename(self) -> str:
        return f"{self.name}.zip"

    def iter_range(self, start: int, end: int) -> Iterator[bytes]:
        """The bytes ``start``..``end`` (inclusive) of the zip, in pieces of at most READ_SIZE.
        A blob whose stored bytes were altered raises ``AlteredBlobRead`` naming its entry's image
        (``InvalidTag`` for an entry that names none), as a storage error is raised: the transfer
        stops there, short of its Content-Length."""
        if start > end:
            return
        starts = [s.offset for s in self.segments]
        i = max(bisect.bisect_right(starts, start) - 1, 0)
        pos = start
        hinted = i  # blobs from here on are not yet announced to the kernel
        while pos <= end and i < len(self.segments):
            seg = self.segments[i]
            if hinted <= i or self.segments[hinted - 1].offset < pos + READ_AHEAD // 2:
                hinted = _read_ahead(self.segments, max(hinted, i), min(pos + READ_AHEAD, end))
            within = pos - seg.offset
            take = min(seg.length - within, end - pos + 1)
            if take > 0:
                if seg.data is not None:
                    yield seg.data[within:within + take]
                else:
                    try:
                        yield from _blob_bytes(seg.blob, within, take)
                    except InvalidTag as exc:
                        if seg.instance is None or isinstance(exc, AlteredBlobRead):
                            raise
                        raise AlteredBlobRead(seg.instance) from exc
                pos += take
            i += 1


#: how far ahead of the bytes being sent the stored blob files are announced to the kernel
READ_AHEAD = 16 * 1024 * 1024


def _read_ahead(segments: list[Segment], i: int, until: int) -> int:
    """Ask the kernel to start reading the stored files of the blobs of segments ``i``... that
    begin before byte ``until`` (posix_fadvise WILLNEED; file storage only), so the disk works
    while earlier blobs are decrypted and sent. Returns the index of the first segment not
    announced."""
    while i < len(segments) and segments[i].offset <= until:
        blob = segments[i].blob
        i += 1
        if blob is None or not hasattr(os, "posix_fadvise"):
            continue
        try:
            path = default_storage.path(blob.storage_name)
        except NotImplementedError:  # object storage: nothing to announce
            return len(segments)
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        finally:
            os.close(fd)
    return i


def _blob_bytes(blob: Blob, offset: int, length: int) -> Iterator[bytes]:
    for chunk in iter_blob(blob, offset, length):
        length -= len(chunk)
        yield chunk
    if length:
        raise OSError("blob shorter than recorded")


def _layout(package: Package, when: datetime) -> None:
    dostime, dosdate = _dos(when)
    segments: list[Segment] = []
    central: list[bytes] = []
    pos = 0

    def add(data: bytes | None = None, blob: Blob | None = None, length: int = 0, instance=None) -> None:
        nonlocal pos
        length = len(data) if data is not None else length
        if length:
            segments.append(Segment(pos, length, data, blob, instance))
            pos += length

    for entry in package.entries:
        name = entry.path.encode("utf-8")
        big = entry.size >= _ZIP64
        extra = struct.pack("<HHQQ", 1, 16, entry.size, entry.size) if big else b""
        size32 = _ZIP64 if big else entry.size
        version = 45 if big else 20
        offset = pos
        add(struct.pack("<IHHHHHIIIHH", 0x04034B50, version, 0x0800, 0, dostime, dosdate, entry.crc32,
                        size32, size32, len(name), len(extra)) + name + extra)
        if entry.data is not None:
            add(entry.data)
        else:
            add(blob=entry.blob, length=entry.size, instance=entry.instance)
        fields = [entry.size, entry.size] if big else []
        if offset >= _ZIP64:
            fields.append(offset)
        cextra = struct.pack("<HH", 1, 8 * len(fields)) + struct.pack(f"<{len(fields)}Q", *fields) if fields else b""
        cversion = 45 if fields else 20
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, (3 << 8) | 45, cversion, 0x0800, 0, dostime,
                                   dosdate, entry.crc32, size32, size32, len(name), len(cextra), 0, 0, 0,
                                   0o100644 << 16, min(offset, _ZIP64)) + name + cextra)
    cd_offset = pos
    cd = b"".join(central)
    count = len(package.entries)
    tail = b""
    if count >= 0xFFFF or cd_offset >= _ZIP64 or len(cd) >= _ZIP64:
        z64_offset = cd_offset + len(cd)
        tail += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, (3 << 8) | 45, 45, 0, 0, count, count, len(cd), cd_offset)
        tail += struct.pack("<IIQI", 0x07064B50, 0, z64_offset, 1)
    tail += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, min(count, 0xFFFF), min(count, 0xFFFF),
                        min(len(cd), _ZIP64), min(cd_offset, _ZIP64), 0)
    add(cd + tail)
    package.segments, package.size = segments, pos
    digest = hashlib.sha256(LAYOUT_VERSION.encode())
    for entry in package.entries:
        digest.update(f"{entry.path}\0{entry.size}\0{entry.sha256}\0".encode())
    digest.update(f"{dostime}:{dosdate}".encode())
    package.etag = f'"{digest.hexdigest()[:32]}"'


# ----------------------------------------------------------------------------- contents

#: a text made when the manifest is written, in its language (``_finish``): ``later(lambda: ...)``
later = lazy(lambda make: make(), str)


def _study_line(study: Study) -> str:
    return (gettext("%(date)s %(modalities)s %(region)s version %(version)s") % {
        "date": study.study_date.isoformat() if study.study_date else gettext("undated"),
        "modalities": ",".join(study.modality_list) or "OT", "region": study.body_part_examined or "",
        "version": study.version}).replace("  ", " ")


def _manifest(package: Package, *, what: str, studies: list[Study]) -> bytes:
    """MANIFEST.txt in the active language: its labels translated, its values as they are, and
    each file's row in one form (sha256, bytes, label, path) whatever the language."""
    lines = [
        gettext("Lightbox download package"),
        gettext("Name: %(name)s") % {"name": package.name},
        gettext("Contents: %(contents)s") % {"contents": what},
        gettext("Label: %(label)s") % {"label": package.label},
        gettext("Studies: %(studies)s") % {"studies": "; ".join(_study_line(s) for s in studies)},
        gettext("De-identified: yes") if package.deidentified else gettext("De-identified: no"),
        "",
        gettext("Files (sha256, bytes, label, path):"),
    ]
    for entry in package.entries:
        lines.append(f"{entry.sha256}  {entry.size}  {entry.label}  {entry.path}")
    if package.missing:
        lines += ["", gettext("Not included (why):")]
        lines += [f"{what_}  {why}" for what_, why in package.missing]
    lines.append("")
    return "\n".join(lines).encode("utf-8")


#: why an image is left out of a package downloaded on an anonymous link without a second factor
#: (``_files_for``'s ``withhold``), in MANIFEST.txt
WITHHELD_ON_LINK = gettext_lazy("This image may show patient details written into it; it is not included "
                                "through this link.")


def _files_for(study: Study, kind: str, *, withhold: Callable[[], bool] | None = None
               ) -> tuple[list[tuple[Instance, RenditionFile]], list[tuple[Instance, str]]]:
    """(instance, file) pairs of a study's rendition, and (instance, why) for those left out.
    ``withhold()``: whether the images whose pixels may identify their patient (``Instance.
    pixels_may_identify``) are left out, said so (the policy's answer for a download on an
    anonymous link without a second factor: ``DownloadDecision.withholds_identifying_pixels``),
    asked only of a study holding such an image.

    The lossless package falls back to the original for an image that could not be losslessly
    compressed (its label says so); preview and education packages never fall back to originals."""
    from apps.renditions.services import education_images_ensure, originals_ensure

    originals_ensure(study=study)
    if kind == Kind.EDUCATION:
        education_images_ensure(study=study)
    files = {f.instance_id: f for f in RenditionFile.objects.filter(study=study, kind=Kind.ORIGINAL)
             .select_related("blob")}
    if kind != Kind.ORIGINAL:
        wanted = {f.instance_id: f for f in RenditionFile.objects.filter(study=study, kind=kind)
                  .select_related("blob", "image_blob")}
    else:
        wanted = files
    pairs, missing = [], []
    instances = Instance.objects.filter(study=study).select_related("series").order_by(
        "series__series_number", "series_id", "instance_number", "id")
    for inst in instances:
        f = wanted.get(inst.pk)
        if inst.pixels_may_identify and withhold is not None and withhold():
            if kind != Kind.EDUCATION or f is not None:  # an education copy lists its key images only
                missing.append((inst, WITHHELD_ON_LINK))
            continue
        if f is not None and f.status == Status.READY and (kind != Kind.EDUCATION or f.image_blob_id):
            pairs.append((inst, f))
        elif kind == Kind.LOSSLESS and inst.pk in files:
            pairs.append((inst, files[inst.pk]))
        elif kind == Kind.EDUCATION and f is None:
            continue  # not a key image
        elif kind == Kind.EDUCATION and f.status == Status.READY:  # its image could not be made
            missing.append((inst, gettext_lazy("The image could not be made.")))
        elif f is not None:  # the stored reason, in the manifest's language
            missing.append((inst, later(lambda f=f: f.reason_shown)))
        else:
            missing.append((inst, gettext_lazy("Not made yet.")))
    return pairs, missing


def _study_entries(pairs, missing, kind: str, root: str) -> tuple[list[Entry], list[tuple[str, str]]]:
    """The entries of a study's files (``_files_for``) under ``root``, and what was left out."""
    entries: list[Entry] = []
    layout = SeriesLayout(prefix=_PREFIX[Kind(kind)])
    for inst, f in pairs:
        label, code = Label(f.label).label, f.label  # labels in the manifest's language (``_finish``)
        if kind == Kind.LOSSLESS and f.kind == Kind.ORIGINAL:
            label = later(lambda base=label: gettext("%(label)s (lossless compression not possible)")
                           % {"label": base})
            code = code if code == Label.LOSSY_SOURCE else "fallback"
            stand_in = True
        else:
            stand_in = False
        if kind == Kind.EDUCATION:  # the file's labelled JPEG image, which any phone opens, not its DICOM
            entries.append(Entry(path=f"{root}/{layout.place(inst, 'jpg')}", size=f.image_bytes,
                                 crc32=f.image_crc32 or 0, sha256=f.image_sha256, label=label, blob=f.image_blob,
                                 code=code, source_lossy=f.source_lossy, stand_in=stand_in, instance=inst))
            continue
        entries.append(Entry(path=f"{root}/{layout.place(inst, f.extension)}",
                             size=f.bytes, crc32=f.crc32 or 0, sha256=f.sha256, label=label, blob=f.blob,
                             code=code, source_lossy=f.source_lossy, stand_in=stand_in, instance=inst))
    gone = [(later(lambda number=inst.instance_number if inst.instance_number is not None else inst.pk:
                    gettext("%(folder)s image %(number)s") % {"folder": root, "number": number}), why)
            for inst, why in missing]
    return entries, gone


class SeriesLayout:
    """The packages' standard folder layout: one folder per series, ``S<number>_<modality>``
    (``_2``, ``_3`` when two series would share a name), and in it the images in the order they
    are placed, ``<prefix><position>.<extension>`` (``IM00001.dcm``)."""

    def __init__(self, prefix: str = "IM") -> None:
        self.prefix = prefix
        self.folders: dict[int, str] = {}
        self.counts: dict[int, int] = {}

    def place(self, inst, extension: str) -> str:
        series = inst.series
        if series.pk not in self.folders:
            number = series.series_number if series.series_number is not None else 0
            base = folder = f"S{number:03d}_{_token(series.modality) or 'OT'}"
            n = 1
            while folder in self.folders.values():
                n += 1
                folder = f"{base}_{n}"
            self.folders[series.pk] = folder
        self.counts[series.pk] = self.counts.get(series.pk, 0) + 1
        return f"{self.folders[series.pk]}/{self.prefix}{self.counts[series.pk]:05d}.{extension}"


#: ``Package.lossy_source``: every image of a lossless package is an original received lossy
LOSSY_SOURCE_ALL = "all"
#: ``Package.lossy_source``: some images of a lossless package are (a mixed case's zip)
LOSSY_SOURCE_SOME = "some"


def lossy_source_of(kind: str, entries: list[Entry]) -> str:
    """Whether a lossless package's images are originals received lossy-compressed, standing in
    for the lossless copies none is made of: all of them (``LOSSY_SOURCE_ALL``, the package named
    ``_LossySource`` and labelled as those originals), some (``LOSSY_SOURCE_SOME``, labelled "Not
    all diagnostic-grade"), or none (""; always "" for another kind). Its download's audit record
    says so (``details.lossy_source``), as its label and name do."""
    if kind != Kind.LOSSLESS:
        return ""
    lossy = [e.stand_in and e.source_lossy for e in entries]
    if lossy and all(lossy):
        return LOSSY_SOURCE_ALL
    return LOSSY_SOURCE_SOME if any(lossy) else ""


def _package_label(kind: str, entries: list[Entry]) -> str:
    """The package's label: its rendition's (``models.label_for``, as the study's list says it).
    A package whose images were all lossy-compressed at the source, or none, has that label; one
    that holds both (a case's zip with a study received lossy among diagnostic ones) says first
    that not all of it is diagnostic-grade, that some images were lossy-compressed at the source
    and where each file's own label is, then the others' label, rather than calling the whole
    package what only some of its files are
    (a preview's or an education copy's label is the same either way). A lossless package whose
    every image is an original lossy-compressed at the source (a case whose studies were all
    received lossy: no lossless copy is made of any, each original stands in) is labelled as
    those originals are, each file's own label ("Original as received - lossy compressed, not
    diagnostic-grade (lossless compression not possible)"), not as a lossless copy."""
    if lossy_source_of(kind, entries) == LOSSY_SOURCE_ALL:
        return later(lambda: gettext("%(label)s (lossless compression not possible)")
                     % {"label": Label.LOSSY_SOURCE.label})
    lossy = {e.source_lossy for e in entries}
    mixed = len(lossy) > 1 and label_for(kind, source_lossy=True) != label_for(kind, source_lossy=False)
    # in the manifest's language (``_finish``)
    base = label_for(kind, source_lossy=lossy == {True}).label
    fallback = kind == Kind.LOSSLESS and any(e.code == "fallback" for e in entries)
    if not mixed and not fallback:
        return base

    def label() -> str:
        text = str(base)
        if fallback:
            text = gettext("%(label)s; some images as the diagnostic original") % {"label": text}
        if mixed:
            # the warning first: read alone, the start of the label must not claim diagnostic quality
            text = gettext("Not all diagnostic-grade: some images were lossy-compressed at the source (each "
                           "file's own label is in MANIFEST.txt); the others: %(label)s") % {"label": text}
        return text

    return later(label)


def _deid_of(studies: list[Study]) -> bool:
    return bool(studies) and not RenditionFile.objects.filter(
        study__in=studies, kind=Kind.ORIGINAL, identity_removed=False).exists()


def _readme(package: Package, language: str) -> Entry:
    """The education package's README.txt, in ``language``: what the pictures are, that they are
    not for diagnosis, and which they are (paths from the package's folder)."""
    root = f"{package.name}/"
    with translation.override(language):
        title = gettext("Education copy of your scan, not for diagnosis")
        lines = [
            title,
            "=" * len(title),
            "",
            gettext("%(label)s, not for diagnosis") % {"label": Label.EDUCATION_LOW_RES.label},
            "",
            gettext("These pictures are small, simplified copies of a few images from your scan, to help you "
                    "understand it. They are low resolution and compressed with loss of detail: they must not be "
                    "used for diagnosis. Your doctors use the full images."),
            "",
            gettext("Each picture is a JPEG file, which a phone, a tablet or a computer can open. A band at the "
                    "bottom of each picture reads \"%(band)s\".") % {"band": EDUCATION_BAND_TEXT},
            "",
            gettext("Pictures in this copy:"),
            *(f"  {e.path.removeprefix(root)}" for e in package.entries),
        ]
        if package.missing:
            lines += ["", ngettext("%(count)s picture could not be included; MANIFEST.txt says why.",
                                   "%(count)s pictures could not be included; MANIFEST.txt says why.",
                                   len(package.missing)) % {"count": len(package.missing)}]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    return Entry(path=f"{root}README.txt", size=len(data), crc32=crc32(data), sha256=hashlib.sha256(data).hexdigest(),
                 label="readme", data=data)


def _finish(package: Package, *, what: str, studies: list[Study], language: str = "en") -> Package:
    """Add MANIFEST.txt, written in ``language``, and lay out the zip. The package's label is
    then kept in English (the ``X-Lightbox-Label`` header, ASCII)."""
    with translation.override(language):
        manifest = _manifest(package, what=what, studies=studies)
    with translation.override("en"):
        package.label = str(package.label)
    package.entries.insert(0, Entry(path=f"{package.name}/MANIFEST.txt", size=len(manifest),
                                    crc32=crc32(manifest), sha256=hashlib.sha256(manifest).hexdigest(),
                                    label="manifest", data=manifest))
    when = max((s.created_at for s in studies), default=timezone.now())
    _layout(package, when.astimezone(UTC) if timezone.is_aware(when) else when)
    return package


def package_finish(package: Package, *, what: str, studies: list[Study]) -> Package:
    """Add MANIFEST.txt to a package another app assembled (its entries and what was left out)
    and lay out the zip, as ``study_package`` does: the one zip writer for every download
    (apps.deid's de-identified exports use it). ``studies`` name the contents in the manifest
    and date the entries (their latest ``created_at``). Its manifest is written in the active
    language (the request's), as ``study_package``'s: ``what``, the entries' labels and the
    reasons of what was left out may be lazy texts (``gettext_lazy``, ``later``), made then."""
    language = translation.get_language() or "en"
    with translation.override("en"):
        return _finish(package, what=what, studies=studies, language=language)


def study_package(study: Study, kind: str, *, withhold: Callable[[], bool] | None = None) -> Package:
    """The package of one rendition of one study, its README (education) and MANIFEST.txt in the
    active language (the request's): the same bytes for whoever asks in that language, so a
    resume matches. ``withhold``: as for ``_files_for``."""
    language = translation.get_language() or "en"
    with translation.override("en"):
        return _study_package(study, kind, language, withhold=withhold)


def case_package(case, studies: list[Study], kind: str, *, withhold: Callable[[], bool] | None = None) -> Package:
    """The package of one rendition of a case's studies (``Case-<short id>_...``): one folder per
    study in it, named as the study's own package; README and MANIFEST.txt as ``study_package``.
    ``withhold``: as for ``_files_for``."""
    language = translation.get_language() or "en"
    with translation.override("en"):
        return _case_package(case, studies, kind, language, withhold=withhold)


def _contents_rendition(kind: str, pairs) -> Callable[[], str]:
    """What MANIFEST's Contents line calls a package's rendition (made in the manifest's language):
    its kind's name, or, for a lossless package all of originals received lossy
    (``_lossy_source_only``: no lossless copy is made of any, each original stands in), what its
    Label line and its name (``_LossySource``) say it holds, not "Lossless compressed"."""
    if _lossy_source_only(kind, pairs):
        return lambda: gettext("originals as received (lossy; no lossless copy possible)")
    return lambda: str(Kind(kind).label)


def _with_readme(package: Package, kind: str, language: str) -> Package:
    if kind == Kind.EDUCATION:
        package.entries.insert(0, _readme(package, language))
    return package


def _study_package(study: Study, kind: str, language: str, *,
                   withhold: Callable[[], bool] | None = None) -> Package:
    from apps.renditions.services import originals_ensure

    originals_ensure(study=study)
    deid = _deid_of([study])
    body = set(study.series.exclude(body_part_examined="").values_list("body_part_examined", flat=True))
    pairs, missing = _files_for(study, kind, withhold=withhold)
    name = package_name([study], body_parts=body, deidentified=deid) + _suffix(kind, pairs)
    entries, missing = _study_entries(pairs, missing, kind, name)
    package = Package(name=name, label=_package_label(kind, entries), entries=entries, missing=missing,
                      deidentified=deid, lossy_source=lossy_source_of(kind, entries),
                      identifying=any(inst.pixels_may_identify for inst, _f in pairs))
    rendition = _contents_rendition(kind, pairs)
    what = later(lambda: gettext("Study, %(rendition)s") % {"rendition": rendition()})
    return _finish(_with_readme(package, kind, language), what=what, studies=[study], language=language)


def _case_package(case, studies: list[Study], kind: str, language: str, *,
                  withhold: Callable[[], bool] | None = None) -> Package:
    from apps.renditions.services import originals_ensure

    for study in studies:
        originals_ensure(study=study)
    deid = _deid_of(studies)
    body = set()
    for study in studies:
        body |= set(study.series.exclude(body_part_examined="").values_list("body_part_examined", flat=True))
    files = [_files_for(study, kind, withhold=withhold) for study in studies]
    everything = [pair for pairs, _missing in files for pair in pairs]
    name = package_name(studies, body_parts=body, deidentified=deid, case=case) + _suffix(kind, everything)
    entries, missing, used = [], [], set()
    for study, (pairs, gone) in zip(studies, files, strict=True):
        sub = package_name([study], body_parts=set(study.series.exclude(body_part_examined="")
                                                    .values_list("body_part_examined", flat=True)),
                           deidentified=_deid_of([study]))
        # a study's folder names its rendition too (``_Original``/``_Lossless``/``_Preview``/...), as
        # its own package would: a folder taken out of the zip is not mistaken for the original study
        # (``_LossySource``: a lossless folder all of originals received lossy, ``_suffix``)
        suffix = _suffix(kind, pairs)
        folder, n = sub + suffix, 1
        while folder in used:
            n += 1
            folder = f"{sub}_{n}{suffix}"
        used.add(folder)
        e, m = _study_entries(pairs, gone, kind, f"{name}/{folder}")
        entries += e
        missing += m
    package = Package(name=name, label=_package_label(kind, entries), entries=entries, missing=missing,
                      deidentified=deid, lossy_source=lossy_source_of(kind, entries),
                      identifying=any(inst.pixels_may_identify for inst, _f in everything))
    rendition = _contents_rendition(kind, everything)
    what = later(lambda: ngettext("Case (%(count)s study), %(rendition)s", "Case (%(count)s studies), %(rendition)s",
                                   len(studies)) % {"count": len(studies), "rendition": rendition()})
    return _finish(_with_readme(package, kind, language), what=what, studies=studies, language=language)
