"""The share form names each study of the case as the case page does: one without a description
is an "Untitled study", not a bare "Study" (two of them read as the same thing twice)."""

from __future__ import annotations

import datetime

import pytest

from apps.sharing.forms import ShareForm
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db


def test_an_untitled_study_is_called_so_in_the_share_form(case):
    StudyFactory(organization=case.organization, case=case, study_description="", study_date=datetime.date(2004, 8, 26))
    labels = [label for _value, label in ShareForm(case=case).fields["studies"].choices]
    assert len(labels) == 1 and labels[0].startswith("Untitled study ("), labels
