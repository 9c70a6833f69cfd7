from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from apps.imaging.models import IngestJob, Study
from tests.factories import CaseFactory

pytestmark = pytest.mark.django_db


def test_manage_ingest_folder_into_a_case(org_a, small_ct, small_ct_zip, capsys):
    case = CaseFactory(organization=org_a)
    out = io.StringIO()
    call_command("ingest", str(small_ct), "--org", org_a.slug, "--case", str(case.public_id), stdout=out)
    assert "done: 6 ingested, 0 duplicate, 0 skipped" in out.getvalue()
    assert "6/6 files" in capsys.readouterr().err          # the progress bar
    assert Study.objects.get().case == case
    out = io.StringIO()
    call_command("ingest", str(small_ct_zip), "--org", org_a.slug, stdout=out)
    assert "0 ingested, 6 duplicate" in out.getvalue()
    assert IngestJob.objects.count() == 2


def test_manage_ingest_refuses_unknown_org_and_foreign_case(org_a, org_b, small_ct):
    with pytest.raises(CommandError):
        call_command("ingest", str(small_ct), "--org", "nope")
    other_case = CaseFactory(organization=org_b)
    with pytest.raises(CommandError):
        call_command("ingest", str(small_ct), "--org", org_a.slug, "--case", str(other_case.public_id))


#: a fictional patient; export tools name files after the patient, as this folder does
NAME, MRN = "Fakeperson^Ines", "FAKE-MRN-770011"


@pytest.fixture
def named_export(tmp_path):
    """A folder as a PACS export writes it: file names carrying the patient's name, two good
    slices, a truncated one and a file that is no DICOM at all (both skipped with a reason)."""
    from pydicom.uid import generate_uid

    from bench.ingest.synthetic import ct_slice

    folder = tmp_path / "Fakeperson_Ines"
    folder.mkdir()
    study, series = generate_uid(), generate_uid()
    uids = [study, series]
    for i in range(3):
        ds = ct_slice(study_uid=study, series_uid=series, index=i, patient_name=NAME, patient_id=MRN, rows=8,
                      columns=8)
        uids.append(ds.SOPInstanceUID)
        ds.save_as(folder / f"Fakeperson_Ines_{i + 1}.dcm", enforce_file_format=True)
    data = (folder / "Fakeperson_Ines_3.dcm").read_bytes()
    (folder / "Fakeperson_Ines_3.dcm").write_bytes(data[:-40])  # the pixels cut short
    (folder / "Fakeperson_Ines_notes.txt").write_text("not a DICOM file, about Fakeperson Ines\n" * 10)
    return folder, uids


def _ingest(*args) -> str:
    import warnings

    out, err = io.StringIO(), io.StringIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call_command("ingest", *args, stdout=out, stderr=err)
    return out.getvalue() + err.getvalue() + "".join(str(w.message) for w in caught)


def _no_header_values(printed: str, uids: list[str]) -> None:
    for value in (NAME, "Fakeperson Ines", MRN, "SYN-ACC-1", "19700101", "Synthetic CT chest", *uids):
        assert value not in printed, value


def test_manage_ingest_names_files_by_position_not_by_path(org_a, named_export, capsys, caplog):
    """File names of DICOM exports carry patient names: the per-file report on the terminal
    names each file by its position in the job's report; no header value is printed either."""
    folder, uids = named_export
    printed = _ingest(str(folder), "--org", org_a.slug)
    printed += "".join(capsys.readouterr()) + caplog.text  # the progress bar (stderr), logs
    assert "done_with_warnings: 2 ingested, 0 duplicate, 2 skipped" in printed
    job = IngestJob.objects.get()
    reasons = dict(job.files.values_list("path", "reason"))
    assert f"  file 3: Skipped: {reasons['Fakeperson_Ines_3.dcm']}" in printed  # truncated
    assert f"  file 4: Skipped: {reasons['Fakeperson_Ines_notes.txt']}" in printed  # not DICOM
    assert "--show-paths" in printed
    assert "Fakeperson" not in printed and "Ines" not in printed
    _no_header_values(printed, uids)
    # again: the duplicates have a reason too, and are named the same way
    printed = _ingest(str(folder), "--org", org_a.slug, "--no-progress")
    assert "0 ingested, 2 duplicate, 2 skipped" in printed
    assert "  file 1: Duplicate (already stored): same SOPInstanceUID and same bytes" in printed
    assert "Fakeperson" not in printed
    _no_header_values(printed, uids)


def test_manage_ingest_show_paths_names_files_but_still_no_header_value(org_a, named_export, capsys):
    folder, uids = named_export
    printed = _ingest(str(folder), "--org", org_a.slug, "--show-paths", "--no-progress")
    printed += "".join(capsys.readouterr())
    assert "  Fakeperson_Ines_3.dcm: Skipped: truncated" in printed
    assert "  Fakeperson_Ines_notes.txt: Skipped: not a DICOM file" in printed
    assert "file 3" not in printed and "--show-paths" not in printed
    _no_header_values(printed, uids)


def test_manage_ingest_a_missing_path_is_named_by_position_unless_show_paths(org_a, tmp_path):
    missing = str(tmp_path / "Fakeperson_Ines_export")
    with pytest.raises(CommandError) as refused:
        call_command("ingest", str(tmp_path), missing, "--org", org_a.slug)
    assert str(refused.value) == "PATH 2: not found"
    with pytest.raises(CommandError) as refused:
        call_command("ingest", missing, "--org", org_a.slug, "--show-paths")
    assert str(refused.value) == f"{missing}: not found"
    assert not IngestJob.objects.exists()
