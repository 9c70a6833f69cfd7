"""A tumor board's participant sees the access it gave them as a tumor board's (QA: their
"Shared with me" said "Custom", the use case a grant is stored with by default). The grants are
stored with the tumor board review's use case; the pages name them by the meeting that made them
("Tumor board meeting", ``Grant.purpose_label``): the review's template gives the original DICOM,
a meeting's grant does not."""

from __future__ import annotations

from datetime import timedelta
from importlib import import_module

import pytest
from django.apps import apps as django_apps
from django.utils import timezone

from apps.cases import services as case_services
from apps.organizations.models import Role
from apps.sharing.models import Grant, GrantSource
from apps.sharing.usecases import UseCase
from tests.factories import CaseFactory, GrantFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def started_board(org_a):
    host = member(org_a, Role.RADIOLOGIST)
    participant = member(org_a, Role.EXTERNAL_CONSULTANT)
    case = CaseFactory(organization=org_a, title="Board case Zephyrine")
    board = case_services.board_create(organization=org_a, by=host, host=host, title="Thoracic board",
                                       meeting_at=timezone.now() + timedelta(hours=2), review_days=6,
                                       cases=[case], participants=[participant])
    case_services.board_start(board=board, by=host)
    return board, participant, case


def test_a_board_makes_tumor_board_review_grants(started_board):
    board, _participant, _case = started_board
    assert {g.use_case for g in board.grants.all()} == {UseCase.TUMOR_BOARD}


def test_shared_with_me_names_a_board_grant_by_its_meeting(started_board, client_as):
    _board, participant, case = started_board
    response = client_as(participant).get("/sharing/received/")
    assert response.status_code == 200
    row = next(line for line in response.content.decode().split("<tr>") if case.title in line)
    assert "Tumor board meeting" in row
    assert "Custom" not in row and "Tumor board review" not in row


def test_shared_case_names_a_board_grant_by_its_meeting(started_board, client_as):
    _board, participant, case = started_board
    response = client_as(participant).get(f"/sharing/cases/{case.public_id}/")
    assert response.status_code == 200
    assert "Tumor board meeting" in response.content.decode()


def test_the_migration_names_earlier_board_grants_tumor_board_review(org_a):
    earlier = GrantFactory(organization=org_a, source=GrantSource.BOARD, use_case=UseCase.CUSTOM)
    shared = GrantFactory(organization=org_a, source=GrantSource.SHARE, use_case=UseCase.CUSTOM)
    migration = import_module("apps.sharing.migrations.0009_board_grants_tumor_board")
    migration.forwards(django_apps, None)
    assert Grant.objects.get(pk=earlier.pk).use_case == UseCase.TUMOR_BOARD
    assert Grant.objects.get(pk=shared.pk).use_case == UseCase.CUSTOM  # a custom share stays one
