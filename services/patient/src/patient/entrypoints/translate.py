"""clinical.patient.v1 requests to domain values; demographics both ways (answers: `responses`)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from clinical.patient.v1 import patient_pb2 as pb
from clinical_platform.limits import (
    EMAIL_CHARS,
    NAME_CHARS,
    PHONE_CHARS,
    TEXT_CHARS,
    RequestLimits,
    declare_limits,
)
from clinical_platform.validation import Violations
from patient.domain.demographics import (
    AdministrativeSex,
    PatientAddress,
    PatientDemographics,
    PatientIdentifier,
    PatientName,
)
from patient.ports import PatientSearch

_SEX_TO_DOMAIN = {
    pb.ADMINISTRATIVE_SEX_UNSPECIFIED: AdministrativeSex.UNKNOWN,
    pb.ADMINISTRATIVE_SEX_UNKNOWN: AdministrativeSex.UNKNOWN,
    pb.ADMINISTRATIVE_SEX_MALE: AdministrativeSex.MALE,
    pb.ADMINISTRATIVE_SEX_FEMALE: AdministrativeSex.FEMALE,
    pb.ADMINISTRATIVE_SEX_OTHER: AdministrativeSex.OTHER,
}

_SEX_TO_PROTO = {
    AdministrativeSex.UNKNOWN: pb.ADMINISTRATIVE_SEX_UNKNOWN,
    AdministrativeSex.MALE: pb.ADMINISTRATIVE_SEX_MALE,
    AdministrativeSex.FEMALE: pb.ADMINISTRATIVE_SEX_FEMALE,
    AdministrativeSex.OTHER: pb.ADMINISTRATIVE_SEX_OTHER,
}

DEFAULT_PAGE = 50
MAX_PAGE = 200
DEFAULT_LISTING = 100
MAX_LISTING = 1000
DEFAULT_MATCHES = 10
MAX_NAME_PARTS = 10
MAX_ADDRESS_LINES = 10
MAX_IDENTIFIERS = 20

LIMITS = declare_limits(
    pb.DESCRIPTOR,
    RequestLimits(
        chars={
            # Names and addresses: the domain's own cap, checked here before anything else.
            **dict.fromkeys(("given", "family", "prefix", "suffix"), NAME_CHARS),
            **dict.fromkeys(("family_name", "given_name"), NAME_CHARS),
            **dict.fromkeys(("lines", "city", "district", "postal_code", "country"), NAME_CHARS),
            "phone": PHONE_CHARS,
            "email": EMAIL_CHARS,
            "reason": TEXT_CHARS,
        },
        counts={
            **dict.fromkeys(("given", "prefix", "suffix"), MAX_NAME_PARTS),
            "lines": MAX_ADDRESS_LINES,
            "identifiers": MAX_IDENTIFIERS,
        },
    ),
)
"""Every field of a clinical.patient.v1 request not named here: an identifier (128)."""


def registration_from(request: pb.RegisterPatientRequest) -> PatientDemographics:
    violations = Violations()
    violations.request_id(request.request_id)
    LIMITS.check(request, violations)
    demographics = demographics_from(request.demographics, violations)
    violations.raise_if_any()
    return demographics


def update_from(
    request: pb.UpdateDemographicsRequest,
) -> tuple[UUID, PatientDemographics, int | None]:
    """The patient, the new demographics and the expected version (None: any)."""
    violations = Violations()
    violations.request_id(request.request_id)
    LIMITS.check(request, violations)
    patient_id = violations.uuid("patient_id", request.patient_id)
    demographics = demographics_from(request.demographics, violations)
    violations.raise_if_any()
    expected = request.expected_version if request.HasField("expected_version") else None
    return patient_id, demographics, expected


def pair_from(request: pb.LinkPatientsRequest | pb.UnlinkPatientsRequest) -> tuple[UUID, UUID]:
    """The two records of a link or unlink."""
    violations = Violations()
    violations.request_id(request.request_id)
    LIMITS.check(request, violations)
    patient_id = violations.uuid("patient_id", request.patient_id)
    other_patient_id = violations.uuid("other_patient_id", request.other_patient_id)
    violations.raise_if_any()
    return patient_id, other_patient_id


def forget_from(request: pb.ForgetPatientRequest) -> UUID:
    violations = Violations()
    violations.request_id(request.request_id)
    LIMITS.check(request, violations)
    patient_id = violations.uuid("patient_id", request.patient_id)
    violations.raise_if_any()
    return patient_id


def care_team_change_from(
    request: pb.AssignCareTeamMemberRequest | pb.EndCareTeamMemberRequest,
) -> tuple[UUID, str]:
    """The record and the clinician (a token subject) of a care-team change."""
    violations = Violations()
    violations.request_id(request.request_id)
    LIMITS.check(request, violations)
    patient_id = violations.uuid("patient_id", request.patient_id)
    if not request.member_subject.strip() or not request.member_subject.isprintable():
        violations.add("member_subject", "must be a clinician's subject (printable, not empty)")
    violations.raise_if_any()
    return patient_id, request.member_subject


def patient_id_from(text: str) -> UUID:
    violations = Violations()
    patient_id = violations.uuid("patient_id", text)
    violations.raise_if_any()
    return patient_id


def search_from(request: pb.SearchPatientsRequest) -> tuple[PatientSearch, tuple[UUID, int] | None]:
    """The criteria, and the record (with its version) the read model must hold first."""
    violations = Violations()
    LIMITS.check(request, violations)
    identifier = None
    if request.HasField("identifier"):
        identifier = PatientIdentifier(request.identifier.system, request.identifier.value)
    query = PatientSearch(
        family_name=request.family_name, given_name=request.given_name,
        birth_date=request.birth_date, identifier=identifier,
        limit=violations.page_size(request.page_size, default=DEFAULT_PAGE, maximum=MAX_PAGE),
        as_of=request.as_of.ToDatetime(tzinfo=UTC) if request.HasField("as_of") else None,
    )  # fmt: skip
    if query.is_empty:
        violations.add("criteria", "at least one criterion is needed")
    after = None
    if request.written_patient_id:
        written = violations.uuid("written_patient_id", request.written_patient_id)
        after = (written, request.min_version)
    violations.raise_if_any()
    return query, after


def version_read_from(request: pb.GetPatientRequest) -> tuple[int, datetime | None]:
    """The version asked for (0: not asked) and the instant (None: not asked)."""
    as_of = request.as_of.ToDatetime(tzinfo=UTC) if request.HasField("as_of") else None
    if request.version and as_of is not None:
        violations = Violations()
        violations.add("as_of", "ask for a version or an instant, not both")
        violations.raise_if_any()
    return request.version, as_of


def listing_from(request: pb.ListPatientsRequest) -> tuple[str, int]:
    """The id the page starts after ("" for the first page) and the page size."""
    violations = Violations()
    LIMITS.check(request, violations)
    limit = violations.page_size(request.page_size, default=DEFAULT_LISTING, maximum=MAX_LISTING)
    after = ""
    if request.page_token:
        after = str(violations.uuid("page_token", request.page_token))
    violations.raise_if_any()
    return after, limit


def match_subject_from(request: pb.FindMatchesRequest) -> UUID | PatientDemographics:
    """A recorded patient's id, or demographics to match."""
    violations = Violations()
    LIMITS.check(request, violations)
    subject: UUID | PatientDemographics
    match request.WhichOneof("subject"):
        case "patient_id":
            subject = violations.uuid("patient_id", request.patient_id)
        case "demographics":
            subject = demographics_from(request.demographics, violations)
        case _:
            violations.add("subject", "demographics or patient_id")
            subject = UUID(int=0)
    violations.raise_if_any()
    return subject


def match_limit(request: pb.FindMatchesRequest) -> int:
    # max_results caps the candidates, it is no page: anything above the maximum is the maximum.
    return min(request.max_results or DEFAULT_MATCHES, MAX_PAGE)


def demographics_from(message: pb.Demographics, violations: Violations) -> PatientDemographics:
    """The demographics as typed; the domain checks their rules, this only the sex code."""
    sex = _SEX_TO_DOMAIN.get(message.sex)
    if sex is None:
        violations.add("demographics.sex", "is not a known code")
        sex = AdministrativeSex.UNKNOWN
    return PatientDemographics(
        name=PatientName(
            tuple(message.name.given),
            message.name.family,
            tuple(message.name.prefix),
            tuple(message.name.suffix),
        ),
        birth_date=message.birth_date,
        sex=sex,
        address=PatientAddress(
            tuple(message.address.lines),
            message.address.city,
            message.address.district,
            message.address.postal_code,
            message.address.country,
        ),
        phone=message.phone,
        email=message.email,
        identifiers=tuple(PatientIdentifier(i.system, i.value) for i in message.identifiers),
    )


def demographics_to(demographics: PatientDemographics) -> pb.Demographics:
    name, address = demographics.name, demographics.address
    return pb.Demographics(
        name=pb.HumanName(
            given=name.given, family=name.family, prefix=name.prefix, suffix=name.suffix
        ),
        birth_date=demographics.birth_date,
        sex=_SEX_TO_PROTO[demographics.sex],
        address=pb.Address(
            lines=address.lines,
            city=address.city,
            district=address.district,
            postal_code=address.postal_code,
            country=address.country,
        ),
        phone=demographics.phone,
        email=demographics.email,
        identifiers=[
            pb.Identifier(system=i.system, value=i.value) for i in demographics.identifiers
        ],
    )
