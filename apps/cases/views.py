"""Case and tumor-board pages: thin views that parse, call a selector or service, and render.
Objects are fetched through selectors (404 to whoever may not see them) and every decision is
``apps.sharing.policy``'s."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.audit.services import record
from apps.cases import selectors, services
from apps.cases.forms import (
    AttachmentForm,
    BoardForm,
    CaseCreateForm,
    CaseFilterForm,
    CaseForm,
    NoteForm,
    PatientForm,
)
from apps.cases.models import BoardState, CaseStatus
from apps.core.pagination import page_of
from apps.organizations.selectors import active_organization_or_404
from apps.organizations.switching import switch_first
from apps.sharing import policy
from apps.sharing import selectors as sharing_selectors
from apps.sharing.policy import Action

PAGE_SIZE = 25
#: studies per page of a case's page (most cases have a few; a long follow-up gathers hundreds)
STUDIES_PAGE_SIZE = 50
#: notes per page of a case's page (a long case gathers hundreds)
NOTES_PAGE_SIZE = 50
#: reports and attachments per page of a case's page
ATTACHMENTS_PAGE_SIZE = 25


def _form_errors(form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for name, errors in exc.error_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc)


def _changed_meanwhile(form_class, instance, exc: services.ChangedMeanwhile, **kwargs):
    """An edit form shown again after ``services.ChangedMeanwhile``: nothing was written, and
    the form holds what is recorded now (and its version), with why, to make the edit again on it."""
    instance.refresh_from_db()
    form = form_class(instance=instance, **kwargs)  # unbound: it shows the recorded values
    form.cleaned_data = {}  # which add_error reads, and an unbound form has not
    form.add_error(None, exc)
    return form


# --- cases ----------------------------------------------------------------------------------

@login_required
def case_list(request: HttpRequest) -> HttpResponse:
    org = active_organization_or_404(request)
    # the list opens on the open cases, and keeps to them on its other pages (?page=2) and for
    # any address that names no status; "Any status" is asked for with status= (empty)
    data = request.GET.copy()
    data.setdefault("status", CaseStatus.OPEN)
    counts, service_lines = selectors.case_counts_and_service_lines(user=request.user, organization=org)
    form = CaseFilterForm(data, service_lines=service_lines)
    if form.is_valid():
        filters = selectors.CaseFilters(**form.cleaned_data)
    else:  # refused input is shown beside its field; the list keeps only the status asked for
        filters = selectors.CaseFilters(status=form.cleaned_data.get("status", ""))
    cases = selectors.case_list(user=request.user, organization=org, filters=filters, request=request)
    page = page_of(request, cases, size=PAGE_SIZE)
    may = policy.can_actions(request.user, (Action.MANAGE_CASE, Action.VIEW_PATIENT_IDENTITY), org,
                             facts=policy.request_facts(request, request.user))
    return render(request, "cases/case_list.html", {
        "organization": org, "form": form, "page": page, "query": page.query,
        "counts": counts,
        "can_create": may[Action.MANAGE_CASE],
        "can_run_boards": may[Action.MANAGE_CASE],
        # the default (open cases) is no filter in use: on a phone the filters start closed
        "filters_in_use": any(value for name, value in (form.cleaned_data or {}).items()
                              if (name, value) != ("status", CaseStatus.OPEN)),
        "show_patient": may[Action.VIEW_PATIENT_IDENTITY],
    })


@login_required
@require_http_methods(["GET", "POST"])
def case_create(request: HttpRequest) -> HttpResponse:
    org = active_organization_or_404(request)
    policy.require(request.user, Action.MANAGE_CASE, org, request=request)
    form = CaseCreateForm(request.POST or None, organization=org)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic():
                patient, _created = services.patient_get_or_create(
                    organization=org, by=request.user, mrn=data["mrn"], name=data["patient_name"],
                    birth_date=data["birth_date"], confirmed_patient=form.confirmed_patient(), request=request)
                case = services.case_create(
                    organization=org, by=request.user, patient=patient, request=request,
                    **{k: data[k] for k in services.CASE_EDITABLE})
        except services.PatientDetailsDiffer as exc:
            form.ask_existing_patient(exc.patient, show_identity=policy.can(
                request.user, Action.VIEW_PATIENT_IDENTITY, org, facts=policy.request_facts(request, request.user)))
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, _("Case created."))
            return redirect("cases:case_detail", case_id=case.public_id)
    return render(request, "cases/case_form.html", {"form": form, "case": None},
                  status=400 if form.errors else 200)


@login_required
def case_detail(request: HttpRequest, case_id: UUID) -> HttpResponse:
    case = selectors.case_get(user=request.user, public_id=case_id, request=request)
    # another of the person's organizations' case (a notice's, an e-mail's link, a tab of before a
    # switch): shown, with its staff actions, once that organization is the active one
    if (switch := switch_first(request, case, Action.MANAGE_CASE, then=request.get_full_path())) is not None:
        return switch
    return _case_page(request, case)


def _case_page(request: HttpRequest, case, *, note_form: NoteForm | None = None,
               attachment_form: AttachmentForm | None = None) -> HttpResponse:
    """The case page (recorded as viewed). With a form that failed, that form shows its errors
    beside its fields and keeps what was typed (status 400); only to whoever may add notes and
    documents, as the form's own view would (anyone else is refused, and the refusal recorded)."""
    failed = note_form is not None or attachment_form is not None
    if note_form is not None:
        policy.require(request.user, Action.ADD_NOTE, case, request=request)
    if attachment_form is not None:
        policy.require(request.user, Action.ATTACH_DOCUMENT, case, request=request)
    # decided on the memberships the request read (a form that failed changed no grant or membership)
    may = selectors.case_page_decisions(user=request.user, case=case, request=request)
    policy.require_decided(may[Action.VIEW_CASE], request.user, Action.VIEW_CASE, case, request=request)
    page = selectors.case_page(user=request.user, case=case, may=may, request=request)
    page.studies = page_of(request, page.studies, size=STUDIES_PAGE_SIZE, param="studies")
    if page.show_patient:  # the patient-ID flags: only for whoever may see who the patient is
        selectors.studies_mark_other_patient(case=case, studies=page.studies)
    # the notes oldest first, opening on the newest (the last page); older ones a link away
    page.notes = page_of(request, page.notes, size=NOTES_PAGE_SIZE, param="notes", last_first=True)
    page.attachments = page_of(request, page.attachments, size=ATTACHMENTS_PAGE_SIZE, param="attachments")
    services.boards_window_ends_record(boards=page.boards)  # one shown ended by its window: recorded once
    record(action="case.viewed", actor=request.user, organization_id=case.organization_id, target=case,
           request=request)
    return render(request, "cases/case_detail.html", {
        "case": case, "page": page, "note_form": note_form or NoteForm(auto_id="note_%s"),
        "attachment_form": attachment_form or AttachmentForm(auto_id="attachment_%s"),
        "can_add_note": page.can_add_note, "can_attach": page.can_attach, "show_patient": page.show_patient,
    }, status=400 if failed else 200)


@login_required
@require_http_methods(["GET", "POST"])
def case_edit(request: HttpRequest, case_id: UUID) -> HttpResponse:
    case = selectors.case_get(user=request.user, public_id=case_id, request=request)
    if (switch := switch_first(request, case, Action.MANAGE_CASE, then=request.path)) is not None:
        return switch
    policy.require(request.user, Action.MANAGE_CASE, case, request=request)
    form = CaseForm(request.POST or None, instance=case, organization=case.organization)
    conflict = False
    if request.method == "POST" and form.is_valid():
        case.refresh_from_db()  # the form wrote onto the instance; the service compares with the stored row
        try:
            services.case_update(case=case, by=request.user, request=request, version=form.cleaned_data["version"],
                                 values={k: form.cleaned_data[k] for k in services.CASE_EDITABLE})
        except services.ChangedMeanwhile as exc:
            form, conflict = _changed_meanwhile(CaseForm, case, exc, organization=case.organization), True
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, _("Case saved."))
            return redirect("cases:case_detail", case_id=case.public_id)
    return render(request, "cases/case_form.html", {"form": form, "case": case},
                  status=409 if conflict else 400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def patient_edit(request: HttpRequest, case_id: UUID) -> HttpResponse:
    """Correct the recorded name or birth date of the case's patient (``services.patient_update``):
    whoever may edit the case and see who its patient is; a case not seen is a 404."""
    case = selectors.case_get(user=request.user, public_id=case_id, request=request)
    if (switch := switch_first(request, case, Action.MANAGE_CASE, then=request.path)) is not None:
        return switch
    policy.require(request.user, Action.MANAGE_CASE, case, request=request)
    policy.require(request.user, Action.VIEW_PATIENT_IDENTITY, case, request=request)
    patient = case.patient
    form = PatientForm(request.POST or None, instance=patient)
    conflict = False
    if request.method == "POST" and form.is_valid():
        try:  # the form wrote onto the instance: the service reads the stored row
            services.patient_update(case=case, by=request.user, request=request, version=form.cleaned_data["version"],
                                    values={k: form.cleaned_data[k] for k in services.PATIENT_EDITABLE})
        except services.ChangedMeanwhile as exc:  # shown what someone else recorded meanwhile, not undoing it
            form, conflict = _changed_meanwhile(PatientForm, patient, exc), True
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, _("Patient details saved."))
            return redirect("cases:case_detail", case_id=case.public_id)
    if request.method == "POST":
        patient.refresh_from_db()  # what is recorded, beside the form's typed values
    return render(request, "cases/patient_form.html", {"form": form, "case": case, "patient": patient},
                  status=409 if conflict else 400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def case_close(request: HttpRequest, case_id: UUID) -> HttpResponse:
    """GET: who loses access on closing, and the button (one tap on the case page closed it at
    once, ending every grant and link for good: too easy a slip on a touch screen, beside Edit).
    POST (CSRF-checked): close it through ``services.case_close``."""
    case = selectors.case_get(user=request.user, public_id=case_id, request=request)
    if (switch := switch_first(request, case, Action.MANAGE_CASE, then=request.path)) is not None:
        return switch
    if request.method == "GET":
        policy.require(request.user, Action.MANAGE_CASE, case, request=request)
        if not case.is_open:
            messages.info(request, _("This case is already closed."))
            return redirect("cases:case_detail", case_id=case.public_id)
        return render(request, "cases/case_close.html", {
            "case": case, "grants": sharing_selectors.with_gives(selectors.case_grants_closing_ends(case=case)),
            # where a patient's share held back is said, the studies to correct (if the user sees them)
            "studies_url": selectors.case_studies_url(user=request.user, case=case, request=request)})
    try:
        revoked = services.case_close(case=case, by=request.user, request=request)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("Case closed. Access given to others ended: %(n)d.") % {"n": revoked})
    return redirect("cases:case_detail", case_id=case.public_id)


@login_required
@require_POST
def case_reopen(request: HttpRequest, case_id: UUID) -> HttpResponse:
    case = selectors.case_get(user=request.user, public_id=case_id, request=request)
    if (switch := switch_first(request, case, Action.MANAGE_CASE, then=case.get_absolute_url())) is not None:
        return switch
    try:
        services.case_reopen(case=case, by=request.user, request=request)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("Case reopened. Access ended on closing stays ended."))
    return redirect("cases:case_detail", case_id=case.public_id)


@login_required
@require_POST
def note_add(request: HttpRequest, case_id: UUID) -> HttpResponse:
    case = selectors.case_get(user=request.user, public_id=case_id, request=request)
    if (switch := switch_first(request, case, Action.ADD_NOTE, then=f"{case.get_absolute_url()}#notes")) is not None:
        return switch
    form = NoteForm(request.POST, auto_id="note_%s")
    if not form.is_valid():
        return _case_page(request, case, note_form=form)  # beside the note, whose text stays
    try:
        services.note_add(case=case, by=request.user, body=form.cleaned_data["body"],
                          kind=form.cleaned_data["kind"], request=request)
    except ValidationError as exc:
        _form_errors(form, exc)
        return _case_page(request, case, note_form=form)
    messages.success(request, _("Note added."))
    return redirect(f"{case.get_absolute_url()}#notes")


@login_required
@require_POST
def attachment_add(request: HttpRequest, case_id: UUID) -> HttpResponse:
    case = selectors.case_get(user=request.user, public_id=case_id, request=request)
    then = f"{case.get_absolute_url()}#attachments"
    if (switch := switch_first(request, case, Action.ATTACH_DOCUMENT, then=then)) is not None:
        return switch
    form = AttachmentForm(request.POST, request.FILES, auto_id="attachment_%s")
    if not form.is_valid():
        return _case_page(request, case, attachment_form=form)  # the errors beside the fields
    upload = form.cleaned_data["file"]
    try:
        services.attachment_add(case=case, by=request.user, fileobj=upload, filename=upload.name,
                                kind=form.cleaned_data["kind"], request=request)
    except ValidationError as exc:
        _form_errors(form, exc)
        return _case_page(request, case, attachment_form=form)
    messages.success(request, _("Document attached."))
    return redirect(f"{case.get_absolute_url()}#attachments")


@login_required
@require_GET
@never_cache
def attachment_download(request: HttpRequest, attachment_id: UUID) -> HttpResponse:
    attachment = selectors.attachment_get(user=request.user, public_id=attachment_id, request=request)
    stream = services.attachment_open(attachment=attachment, by=request.user, request=request)
    response = FileResponse(stream, as_attachment=True, filename=attachment.filename,
                            content_type=attachment.content_type)
    response["Content-Length"] = str(attachment.size)
    response["X-Content-Type-Options"] = "nosniff"
    return response


# --- tumor boards ---------------------------------------------------------------------------

def _board_page(board) -> str:
    return reverse("cases:board_detail", kwargs={"boardsession_id": board.public_id})


@login_required
def board_list(request: HttpRequest) -> HttpResponse:
    org = active_organization_or_404(request)
    boards = page_of(request, selectors.board_list(user=request.user, organization=org), size=PAGE_SIZE)
    # a live board whose review window ran out is listed as ended: its end is recorded (once) first
    services.boards_window_ends_record(boards=boards)
    return render(request, "cases/board_list.html", {
        "organization": org, "boards": boards, "page": boards,
        "can_create": policy.can(request.user, Action.MANAGE_CASE, org,
                                 facts=policy.request_facts(request, request.user)),
    })


@login_required
@require_http_methods(["GET", "POST"])
def board_create(request: HttpRequest) -> HttpResponse:
    org = active_organization_or_404(request)
    policy.require(request.user, Action.MANAGE_CASE, org, request=request)
    form = BoardForm(request.POST or None, organization=org, user=request.user, initial={"host": request.user})
    if request.method == "POST" and form.is_valid():
        try:
            board = services.board_create(organization=org, by=request.user, request=request, **form.cleaned_data)
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, _("Tumor board scheduled."))
            return redirect("cases:board_detail", boardsession_id=board.public_id)
    return render(request, "cases/board_form.html", {"form": form, "board": None},
                  status=400 if form.errors else 200)


@login_required
@require_GET
def case_choices(request: HttpRequest) -> JsonResponse:
    """The matches of a search in the case form's list of responsible clinicians (``?list=``, the
    field's name), as the form would draw them, for the form's script (as ``board_choices``): for
    whoever may create or edit cases in the active organization. ``ticked``: the one named."""
    org = active_organization_or_404(request)
    policy.require(request.user, Action.MANAGE_CASE, org, request=request)
    return CaseForm(organization=org).choices_response(request.GET)


@login_required
@require_GET
def board_choices(request: HttpRequest) -> JsonResponse:
    """The matches of a search in the board form's list of cases, of participants or of hosts
    (``?list=``, the field's name), as the form would draw them, for the form's script to show as
    the search is typed: for whoever may schedule boards in the active organization, as the form
    itself. ``ticked`` (repeated) are the ids already ticked (the host chosen), which the answer
    leaves out of its matches."""
    org = active_organization_or_404(request)
    # a search only reads: its decisions are made on the memberships the request read
    policy.require(request.user, Action.MANAGE_CASE, org, request=request,
                   facts=policy.request_facts(request, request.user))
    return BoardForm(organization=org, user=request.user, request=request).choices_response(request.GET)


@login_required
def board_detail(request: HttpRequest, boardsession_id: UUID) -> HttpResponse:
    board = selectors.board_get(user=request.user, public_id=boardsession_id, request=request)
    # another of the person's organizations' board: shown, with its buttons, once it is the active one
    if (switch := switch_first(request, board, Action.MANAGE_CASE, then=request.get_full_path())) is not None:
        return switch
    # a live board whose review window ran out is shown ended: its end is recorded (once) first
    services.boards_window_ends_record(boards=[board])
    facts = policy.request_facts(request, request.user)  # the memberships the request read
    return render(request, "cases/board_detail.html", {
        "board": board, "cases": selectors.board_cases(user=request.user, board=board),
        # an ended board's outside participants no longer see who else took part (nor their e-mails)
        "participants": (list(board.participants.order_by("full_name", "email"))
                         if policy.sees_board_participants(request.user, board, facts=facts) else None),
        "can_start": board.state == BoardState.SCHEDULED and policy.can(request.user, Action.RUN_BOARD, board,
                                                                         facts=facts),
        # past its review window a live board is ended for everyone (BoardSession.has_ended): nothing to end
        "can_end": board.is_live and policy.can(request.user, Action.END_BOARD, board, facts=facts),
        "can_edit": board.state == BoardState.SCHEDULED and policy.can(request.user, Action.MANAGE_CASE, board,
                                                                        facts=facts),
        # an ended meeting's page says whose access ended with it: the reader's own, if it gave them any
        # and their role does not show them its cases anyway (staff are pointed to the cases instead)
        "ended": board.has_ended,
        "cases_by_role": (cases_by_role := board.has_ended
                          and policy.sees_board_cases_by_role(request.user, board, facts=facts)),
        "access_ended": (board.has_ended and not cases_by_role
                         and selectors.board_gave_access(user=request.user, board=board)),
    })


@login_required
@require_http_methods(["GET", "POST"])
def board_edit(request: HttpRequest, boardsession_id: UUID) -> HttpResponse:
    board = selectors.board_get(user=request.user, public_id=boardsession_id, request=request)
    if (switch := switch_first(request, board, Action.MANAGE_CASE, then=request.path)) is not None:
        return switch
    policy.require(request.user, Action.MANAGE_CASE, board, request=request)
    if board.state != BoardState.SCHEDULED:
        messages.error(request, _("Only a scheduled board can be edited."))
        return redirect("cases:board_detail", boardsession_id=board.public_id)
    form = BoardForm(request.POST or None, instance=board, organization=board.organization, user=request.user)
    if request.method == "POST" and form.is_valid():
        board.refresh_from_db()
        try:
            services.board_update(board=board, by=request.user, request=request, **form.cleaned_data)
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, _("Tumor board saved."))
            return redirect("cases:board_detail", boardsession_id=board.public_id)
    return render(request, "cases/board_form.html", {"form": form, "board": board},
                  status=400 if form.errors else 200)


@login_required
@require_POST
def board_start(request: HttpRequest, boardsession_id: UUID) -> HttpResponse:
    board = selectors.board_get(user=request.user, public_id=boardsession_id, request=request)
    if (switch := switch_first(request, board, Action.RUN_BOARD, then=_board_page(board))) is not None:
        return switch
    try:
        n = services.board_start(board=board, by=request.user, request=request)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, ngettext("Meeting started: participants can open the cases (%(n)d grant).",
                                           "Meeting started: participants can open the cases (%(n)d grants).", n)
                         % {"n": n})
    return redirect("cases:board_detail", boardsession_id=board.public_id)


@login_required
@require_POST
def board_end(request: HttpRequest, boardsession_id: UUID) -> HttpResponse:
    board = selectors.board_get(user=request.user, public_id=boardsession_id, request=request)
    if (switch := switch_first(request, board, Action.END_BOARD, then=_board_page(board))) is not None:
        return switch
    try:
        n = services.board_end(board=board, by=request.user, request=request)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        # the grants ended with the meeting (so their lists say), nobody revoked them by hand
        messages.success(request, ngettext("Meeting ended: participants' access ended with it (%(n)d grant).",
                                           "Meeting ended: participants' access ended with it (%(n)d grants).", n)
                         % {"n": n})
    return redirect("cases:board_detail", boardsession_id=board.public_id)
