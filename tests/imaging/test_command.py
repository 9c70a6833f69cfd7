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
