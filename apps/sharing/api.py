"""REST API for grants: create (through a template), list, revoke, extend, renew.

Rows are reached only through OrgScopedViewSet (staff of the grant's organization); recipients
list theirs at /api/v1/grants/received/. Decisions are apps.sharing.policy's."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.exceptions import PermissionDenied as ApiPermissionDenied
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api import BoundedDateTimeField, OrgScopedViewSet, PublicIdField, StrictSerializer
from apps.sharing import policy, selectors, services
from apps.sharing.forms import NO_ACCOUNT
from apps.sharing.models import COUNT_MAX, Grant, GrantState, SecondFactor
from apps.sharing.usecases import TEMPLATES, RecipientKind, Rendition, UseCase

#: no template lasts longer (each refuses more than its own maximum, beside ``hours``)
HOURS_MAX = max(t.max_hours for t in TEMPLATES.values())

#: the schema's word on an anonymous link's terms
LINK_TERM_HELP = ("Anonymous links only: leave it out (or blank) on a share to a person, a group or an invited "
                  "address, where it is refused (400 beside the field).")


class GrantOutputSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    case = serializers.UUIDField(source="case.public_id", read_only=True)
    grantee = serializers.UUIDField(source="grantee.public_id", read_only=True, allow_null=True)
    state = serializers.SerializerMethodField()

    class Meta:
        model = Grant
        fields = ["id", "case", "grantee", "grantee_email", "group_name", "use_case", "permissions", "renditions",
                  "mfa_required", "starts_at", "expires_at", "revoked_at", "download_limit", "download_count",
                  "open_count", "first_opened_at", "last_opened_at", "state"]

    # its values in the schema: clients learn of "ended_with_board" (a tumor board's grants once
    # its meeting ended, "revoked" before 3fae494) from it, not from a changed answer
    @extend_schema_field(serializers.ChoiceField(choices=GrantState.choices))
    def get_state(self, grant: Grant) -> str:
        # a holder's list gives its grants their state for them (``selectors.with_state(holder=)``)
        return getattr(grant, "current_state", None) or grant.state()


class GrantCreatedSerializer(GrantOutputSerializer):
    link = serializers.CharField(read_only=True, help_text="The share link; shown once, never stored.")

    class Meta(GrantOutputSerializer.Meta):
        fields = [*GrantOutputSerializer.Meta.fields, "link"]


class GrantCreateSerializer(StrictSerializer):
    case = PublicIdField(help_text="The case's id (a UUID string). One not visible to you is answered 404.")
    use_case = serializers.ChoiceField(choices=UseCase.choices)
    recipient_kind = serializers.ChoiceField(choices=RecipientKind.choices)
    recipient_email = serializers.EmailField(required=False, allow_blank=True,
                                             max_length=Grant._meta.get_field("grantee_email").max_length)
    group_emails = serializers.ListField(child=serializers.EmailField(), required=False,
                                         max_length=services.GROUP_MAX_MEMBERS,
                                         help_text="Each needs an active account; an address without one is refused.")
    group_name = serializers.CharField(required=False, allow_blank=True, max_length=120)
    renditions = serializers.ListField(child=serializers.ChoiceField(choices=Rendition.choices), required=False,
                                       allow_empty=False,
                                       help_text="Left out, the use case's own; an empty list is refused.")
    hours = serializers.IntegerField(required=False, min_value=1, max_value=HOURS_MAX)
    download_limit = serializers.IntegerField(required=False, min_value=1, max_value=COUNT_MAX)
    # an anonymous link's terms: refused on a share to a person, a group or an invited address, as
    # the share form refuses them (``services.share_link_terms_check``)
    second_factor = serializers.ChoiceField(choices=SecondFactor.choices, required=False, allow_blank=True,
                                            help_text=LINK_TERM_HELP)
    passcode = serializers.CharField(required=False, allow_blank=True, max_length=64, write_only=True,
                                     help_text=f"With second_factor \"passcode\" only. {LINK_TERM_HELP}")
    max_uses = serializers.IntegerField(required=False, min_value=1, max_value=COUNT_MAX, help_text=LINK_TERM_HELP)
    not_before = BoundedDateTimeField(required=False)


class ExtendSerializer(StrictSerializer):
    expires_at = BoundedDateTimeField()
    reason = serializers.CharField(min_length=10, max_length=1000)


class RenewSerializer(StrictSerializer):
    hours = serializers.IntegerField(required=False, min_value=1, max_value=HOURS_MAX)


def _api_errors(exc: Exception, serializer: type[serializers.Serializer]):
    """A service's refusal as the API's error: a rule about one field of the request (the
    ValidationError's code names it, e.g. ``hours``) beside that field, others under ``detail``."""
    if isinstance(exc, ValidationError):
        fields = serializer().fields
        errors: dict[str, list[str]] = {}
        for error in exc.error_list if not hasattr(exc, "error_dict") else \
                [e for field_errors in exc.error_dict.values() for e in field_errors]:
            key = error.code if error.code in fields else "detail"
            errors.setdefault(key, []).extend(error.messages)
        return ApiValidationError(errors)
    return ApiPermissionDenied(str(exc) or None)


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


class GrantViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """Grants of the organizations where the user is staff. ``?mine=1`` keeps the user's own."""

    model = Grant
    lookup_url_kwarg = "grant_id"
    serializer_class = GrantOutputSerializer
    lightbox_action = policy.Action.MANAGE_GRANT

    def get_permissions(self):
        from apps.accounts.mfa import RecentOTP

        permissions = super().get_permissions()
        if self.action in ("create", "renew", "extend"):
            permissions.append(RecentOTP())  # giving access away needs a recent second factor
        return permissions

    def refine_queryset(self, queryset):
        # its links: an anonymous link's state reads them (``Grant.links_used_up``)
        queryset = queryset.select_related("case", "grantee").prefetch_related("links")
        if _flag(self.request.query_params.get("mine")):
            queryset = queryset.filter(created_by=self.request.user)
        return queryset

    def _link(self, raw: str) -> str:
        return self.request.build_absolute_uri(reverse("sharing:link_open", kwargs={"token": raw}))

    @extend_schema(parameters=[OpenApiParameter(
        "mine", OpenApiTypes.BOOL, required=False,
        description="1 (or true): only the grants you created (\"my shares\").")])
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=GrantCreateSerializer, responses={201: GrantCreatedSerializer})
    def create(self, request: Request) -> Response:
        from apps.accounts.models import User
        from apps.cases.models import Case

        data = GrantCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        case = Case.objects.visible_to(request.user).filter(public_id=v["case"]).first()
        if case is None:
            raise NotFound
        # who may share is asked first (and a refusal recorded), so that only someone who may
        # share learns which addresses have accounts
        policy.require(request.user, policy.Action.SHARE_CASE, case, request=request)
        try:  # the share form's rule: an anonymous link's terms on a share to a person are refused, not dropped
            services.share_link_terms_check(recipient_kind=v["recipient_kind"], values=v)
        except ValidationError as exc:
            raise _api_errors(exc, GrantCreateSerializer) from exc
        grantee, members = None, []
        if v["recipient_kind"] == RecipientKind.USER:
            grantee = User.objects.filter(email=(v.get("recipient_email") or "").lower(), is_active=True).first()
            if grantee is None:
                raise ApiValidationError({"recipient_email": [
                    _("No active account has that address. Invite it instead.")]})
        elif v["recipient_kind"] == RecipientKind.EMAIL and v.get("recipient_email") and not User.objects.filter(
                email=v["recipient_email"].lower(), is_active=True).exists():
            raise ApiValidationError({"recipient_email": [_(NO_ACCOUNT)]})  # as the share form says
        elif v["recipient_kind"] == RecipientKind.GROUP:
            emails = sorted({e.lower() for e in v.get("group_emails", [])})
            members = list(User.objects.filter(email__in=emails, is_active=True))
            missing = sorted(set(emails) - {(m.email or "").lower() for m in members})
            if missing:  # as the share form says: each member needs an account, none is dropped
                raise ApiValidationError({"group_emails": [
                    _("No active account for: %(emails)s") % {"emails": ", ".join(missing)}]})
        try:
            grant, _link, raw = services.share_create(
                case=case, by=request.user, use_case=v["use_case"], recipient_kind=v["recipient_kind"],
                grantee=grantee, group_members=members, group_name=v.get("group_name", ""),
                grantee_email=v.get("recipient_email", "") if v["recipient_kind"] == RecipientKind.EMAIL else "",
                hours=v.get("hours"), renditions=v.get("renditions"), download_limit=v.get("download_limit"),
                second_factor=v.get("second_factor", ""), passcode=v.get("passcode", ""),
                max_uses=v.get("max_uses"), not_before=v.get("not_before"), request=request)
        except (ValidationError, PermissionDenied) as exc:
            raise _api_errors(exc, GrantCreateSerializer) from exc
        grant.link = self._link(raw)
        return Response(GrantCreatedSerializer(grant).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: GrantOutputSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, grant_id: str) -> Response:
        grant = self.get_object()
        policy.require(request.user, policy.Action.MANAGE_GRANT, grant, request=request)
        services.grants_revoke(grants=[grant], by=request.user, reason="revoked by sharer", request=request)
        grant.refresh_from_db()
        return Response(GrantOutputSerializer(grant).data)

    @extend_schema(request=ExtendSerializer, responses={200: GrantOutputSerializer})
    @action(detail=True, methods=["post"])
    def extend(self, request: Request, grant_id: str) -> Response:
        grant = self.get_object()
        data = ExtendSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            grant = services.grant_extend(grant=grant, by=request.user, request=request, **data.validated_data)
        except (ValidationError, PermissionDenied) as exc:
            raise _api_errors(exc, ExtendSerializer) from exc
        return Response(GrantOutputSerializer(grant).data)

    @extend_schema(request=RenewSerializer, responses={201: GrantCreatedSerializer})
    @action(detail=True, methods=["post"])
    def renew(self, request: Request, grant_id: str) -> Response:
        grant = self.get_object()
        data = RenewSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            new, _link, raw = services.grant_renew(grant=grant, by=request.user, hours=data.validated_data.get("hours"),
                                                   request=request)
        except (ValidationError, PermissionDenied) as exc:
            raise _api_errors(exc, RenewSerializer) from exc
        new.link = self._link(raw)
        return Response(GrantCreatedSerializer(new).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: GrantOutputSerializer(many=True)})
    @action(detail=False, methods=["get"])
    def received(self, request: Request) -> Response:
        """Grants addressed to the signed-in user ("shared with me"), paginated as the list is."""
        grants = (Grant.objects.addressed_to(request.user).select_related("case", "grantee")
                  .order_by("-created_at", "pk"))
        page = self.paginate_queryset(grants)
        # the state for its holder: "no_longer_available" where the policy gives them nothing now
        page = selectors.with_state(page, holder=request.user, request=request)
        return self.get_paginated_response(GrantOutputSerializer(page, many=True).data)

