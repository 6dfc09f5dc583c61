"""What the directory refuses, each with the sentence the caller sees."""

from __future__ import annotations

from collections.abc import Iterable

from bridge.errors import Codes, PracticeError, forbidden, invalid_param, not_found


def unknown_plan(plan: str, plans: Iterable[str]) -> PracticeError:
    return PracticeError(
        Codes.UNKNOWN_PLAN,
        f"Unknown plan '{plan}'; known plans: {', '.join(plans)}.",
        400,
        param="plan",
    )


def staff_not_found() -> PracticeError:
    return not_found("This team member")


def client_not_found() -> PracticeError:
    return not_found("This client")


def own_primary() -> PracticeError:
    return invalid_param("family_primary_id", "A client cannot be their own family primary.")


def unknown_family_primary() -> PracticeError:
    return PracticeError(
        Codes.UNKNOWN_FAMILY_PRIMARY,
        "The family primary is not a client of this practice.",
        400,
        param="family_primary_id",
    )


def family_primary_is_sub_record(primary_id: str | None) -> PracticeError:
    return PracticeError(
        Codes.FAMILY_PRIMARY_IS_SUB_RECORD,
        "The family primary is itself a family member; name their primary instead.",
        400,
        param="family_primary_id",
        primary_id=primary_id,
    )


def family_primary() -> PracticeError:
    return PracticeError(
        Codes.FAMILY_PRIMARY,
        "This client is the primary of a family and cannot become a family member itself.",
        409,
        param="family_primary_id",
    )


def unknown_user() -> PracticeError:
    return forbidden("This user is not part of any practice.", Codes.UNKNOWN_USER)


def staff_removed() -> PracticeError:
    return forbidden("This team member was removed from the practice.", Codes.STAFF_REMOVED)


def client_removed() -> PracticeError:
    return forbidden("This client was removed from the practice.", Codes.CLIENT_REMOVED)


def sub_record(primary_id: str | None) -> PracticeError:
    return PracticeError(
        Codes.SUB_RECORD,
        "This client is a family member without an account of their own; their family "
        "primary uses the portal for them.",
        403,
        primary_id=primary_id,
    )


def client_not_activated() -> PracticeError:
    return forbidden(
        "This client has not activated their portal account.", Codes.CLIENT_NOT_ACTIVATED
    )


def no_portal_access() -> PracticeError:
    return forbidden("This client has no portal access.", Codes.NO_PORTAL_ACCESS)


def app_login_staff_only() -> PracticeError:
    return forbidden(
        "Clients use the practice portal only; Matrix app sign-in is for the practice team.",
        Codes.APP_LOGIN_STAFF_ONLY,
    )
