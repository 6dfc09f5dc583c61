"""The localpart template: valid, reversible, injective and inside the registration's namespace."""

from __future__ import annotations

import re
import uuid

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bridge.identity import (
    ID_ALPHABET,
    KINDS,
    MAX_USER_ID_LENGTH,
    IdentityMapper,
    Kind,
    PortalIdentity,
    TemplateError,
    escape,
    unescape,
    validate_template,
)
from tests.clients import ApiClient

DOMAIN = "practice.test"
BOT = "practicebot"
DEFAULT_TEMPLATE = "pb_{kind}_{practice}_{id}"
TEMPLATES = (
    DEFAULT_TEMPLATE,
    "{practice}.{kind}.{id}",
    "portal/{id}_{practice}/{kind}",
    "x-{kind}._{practice}__{id}-9",
)
# Characters Matrix allows in the localpart of a new user id (spec: "User identifiers").
LOCALPART = re.compile(r"[a-z0-9._=/-]+")

api_ids = st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True) | st.text(
    alphabet=ID_ALPHABET, min_size=50, max_size=64
)
any_ids = st.text(min_size=1)
ids = api_ids | any_ids
kinds = st.sampled_from(KINDS)
templates = st.sampled_from(TEMPLATES)


def mapper(template: str = DEFAULT_TEMPLATE, domain: str = DOMAIN) -> IdentityMapper:
    return IdentityMapper(template, domain, BOT)


@settings(max_examples=300)
@given(templates, kinds, ids, ids)
def test_localpart_is_valid_and_parses_back(
    template: str, kind: Kind, practice_id: str, local_id: str
) -> None:
    m = mapper(template)
    localpart = m.localpart(kind, practice_id, local_id)
    assert LOCALPART.fullmatch(localpart), localpart
    user_id = m.user_id(kind, practice_id, local_id)
    assert m.parse(user_id) == PortalIdentity(kind, practice_id, local_id)


@settings(max_examples=300)
@given(templates, kinds, api_ids, api_ids)
def test_ids_the_api_accepts_fit_in_a_matrix_user_id(
    template: str, kind: Kind, practice_id: str, local_id: str
) -> None:
    user_id = mapper(template).user_id(kind, practice_id, local_id)
    assert len(user_id) <= MAX_USER_ID_LENGTH


@pytest.mark.parametrize("ch", list(ID_ALPHABET))
def test_longest_ids_of_every_character_fit(ch: str) -> None:
    """The worst cases: 64 characters that all need escaping (or none do), in both fields."""
    m = mapper()
    user_id = m.user_id("client", ch * 64, ch * 64)
    assert len(user_id) <= m.max_user_id_length() <= MAX_USER_ID_LENGTH
    assert LOCALPART.fullmatch(m.localpart("client", ch * 64, ch * 64))
    assert m.parse(user_id) == PortalIdentity("client", ch * 64, ch * 64)


def test_common_ids_stay_readable() -> None:
    m = mapper()
    assert m.user_id("client", "p1", "c-42") == "@pb_client_p1_c-42:practice.test"
    assert m.user_id("staff", "Sunrise", "dr.lee") == "@pb_staff_=53unrise_dr=2elee:practice.test"


@settings(max_examples=500)
@given(templates, kinds, ids, ids, kinds, ids, ids)
def test_distinct_identities_get_distinct_user_ids(
    template: str, k1: Kind, p1: str, i1: str, k2: Kind, p2: str, i2: str
) -> None:
    assume((k1, p1, i1) != (k2, p2, i2))
    m = mapper(template)
    assert m.user_id(k1, p1, i1) != m.user_id(k2, p2, i2)


@given(kinds, ids, ids, ids)
def test_ids_differing_only_where_a_separator_could_hide_stay_distinct(
    kind: Kind, a: str, b: str, c: str
) -> None:
    """("a_b", "c") and ("a", "b_c") would collide if '_' were not escaped inside a field."""
    m = mapper()
    left = m.user_id(kind, f"{a}_{b}", c)
    right = m.user_id(kind, a, f"{b}_{c}")
    assert left != right


@settings(max_examples=300)
@given(templates, kinds, ids, ids)
def test_namespace_regex_matches_every_portal_user(
    template: str, kind: Kind, practice_id: str, local_id: str
) -> None:
    m = mapper(template)
    namespace = re.compile(m.namespace_regex())
    user_id = m.user_id(kind, practice_id, local_id)
    # Synapse tests namespaces with re.match; the module with fullmatch.
    assert namespace.match(user_id)
    assert namespace.fullmatch(user_id)


@pytest.mark.parametrize(
    "user_id",
    [
        "@practicebot:practice.test",
        "@alice:practice.test",
        "@pb_staff_p1_s1:other.test",
        "@pb_staff_p1_s1:practice.test.evil.example",
        "@pb_staff_p1_s1:practice.test:8448",
        "@pb_admin_p1_s1:practice.test",
        "@pb_staff_p1_s1_x:practice.test",
        "@pb_staff_p1:practice.test",
        "@xpb_staff_p1_s1:practice.test",
        "@PB_staff_p1_s1:practice.test",
    ],
)
def test_namespace_regex_leaves_other_users_alone(user_id: str) -> None:
    assert not re.match(mapper().namespace_regex(), user_id)


@pytest.mark.parametrize(
    "template",
    [
        "{kind}{practice}_{id}",  # nothing between two placeholders
        "pb_{kind}-{practice}-{id}",  # '-' also occurs inside ids
        "pb_{kind}_{practice}=x={id}",
        "pb_{kind}_{practice}_a_{id}",  # letters between placeholders
        "pb_{kind}_{practice}",  # {id} missing
        "pb_{kind}_{practice}_{id}_{id}",  # twice
        "PB_{kind}_{practice}_{id}",  # upper case is not a valid localpart
        "pb_{kind}_{practice}_{id}=",
        "pb {kind}_{practice}_{id}",
        "",
    ],
)
def test_ambiguous_or_invalid_templates_are_refused(template: str) -> None:
    with pytest.raises(TemplateError):
        validate_template(template)
    with pytest.raises(TemplateError):
        IdentityMapper(template, DOMAIN, BOT)


@settings(max_examples=300)
@given(
    st.permutations(["{kind}", "{practice}", "{id}"]),
    st.lists(st.text(alphabet="az09._/-=", max_size=3), min_size=4, max_size=4),
    kinds,
    ids,
    ids,
    ids,
)
def test_every_template_the_validator_accepts_is_reversible_and_injective(
    order: list[str], glue: list[str], kind: Kind, practice_id: str, local_id: str, other: str
) -> None:
    template = glue[0] + order[0] + glue[1] + order[1] + glue[2] + order[2] + glue[3]
    try:
        m = mapper(template)
    except TemplateError:
        return
    user_id = m.user_id(kind, practice_id, local_id)
    assert m.parse(user_id) == PortalIdentity(kind, practice_id, local_id)
    assert re.match(m.namespace_regex(), user_id)
    if other != local_id:
        assert m.user_id(kind, practice_id, other) != user_id


fields = st.text(alphabet="abcdefgz0123456789=-+", min_size=1, max_size=12)
shaped_like_portal_users = st.builds(
    "@pb_{}_{}_{}:{}".format,
    st.sampled_from(KINDS + ("admin",)),
    fields,
    fields,
    st.sampled_from([DOMAIN, "other.test"]),
)


@settings(max_examples=1000)
@given(st.text() | shaped_like_portal_users)
def test_parse_never_raises_and_accepts_only_canonical_user_ids(user_id: str) -> None:
    m = mapper()
    identity = m.parse(user_id)
    if identity is not None:
        assert m.user_id(identity.kind, identity.practice_id, identity.local_id) == user_id


@pytest.mark.parametrize(
    "user_id",
    [
        "@pb_staff_p1_s1:other.test",  # foreign server
        "@pb_staff_p1_s1:practice.test.evil",
        "@practicebot:practice.test",  # the bot
        "@pb_admin_p1_s1:practice.test",
        "@pb_staff_p1_=4A:practice.test",  # upper-case hex: not what the mapper writes
        "@pb_staff_p1_=2d:practice.test",  # an escaped '-', which is never escaped
        "@pb_staff_p1_=:practice.test",  # dangling escape
        "@pb_staff_p1_=+1:practice.test",
        "@pb_staff_p1_=ff:practice.test",  # not UTF-8
        "@pb_staff_p1_=z:practice.test",  # empty packed id
        "@pb_staff_p1_=z0a:practice.test",  # packed with a leading zero
        "@pb_staff_p1_=zab:practice.test",  # short ids are never packed
        "pb_staff_p1_s1:practice.test",
        "@pb_staff_p1_s1",
        "",
        "@:",
        "@pb_staff__s1:practice.test",
    ],
)
def test_parse_rejects_foreign_bot_and_garbage(user_id: str) -> None:
    assert mapper().parse(user_id) is None


def test_parse_of_a_non_string_is_none() -> None:
    assert mapper().parse(None) is None  # type: ignore[arg-type]
    assert mapper().parse(42) is None  # type: ignore[arg-type]


def test_bot_is_not_a_portal_identity_even_when_shaped_like_one() -> None:
    m = IdentityMapper(DEFAULT_TEMPLATE, DOMAIN, "pb_staff_bridge_bot")
    assert m.parse("@pb_staff_bridge_bot:practice.test") is None


def test_empty_ids_and_unknown_kinds_are_refused() -> None:
    m = mapper()
    with pytest.raises(ValueError):
        m.user_id("staff", "", "s1")
    with pytest.raises(ValueError):
        m.user_id("staff", "p1", "")
    with pytest.raises(ValueError):
        m.user_id("admin", "p1", "s1")  # type: ignore[arg-type]


@given(ids)
def test_escape_round_trips_and_uses_the_field_alphabet(value: str) -> None:
    field = escape(value)
    assert re.fullmatch(r"[a-z0-9=-]+", field)
    assert unescape(field) == value


async def test_longest_ids_the_api_accepts_get_real_accounts(api: ApiClient) -> None:
    """The worst-case ids register and stay within the spec's 255 characters.

    (This Synapse registers longer appservice users, but the spec caps user ids at 255 and
    other servers and clients rely on it, so the bridge never makes one.)
    """
    practice_id = "P" + uuid.uuid4().hex.upper()[:8] + "_" * 55
    staff_id = "Dr.Jane_" + "X" * 56
    await api.setup_practice(practice_id, clients=(), staff=((staff_id, "owner"),))
    session = await api.session_for(practice_id, staff_id=staff_id)
    who = await session.whoami()
    assert who.status == 200, who.body
    assert len(who.body["user_id"]) <= MAX_USER_ID_LENGTH
    assert mapper().parse(who.body["user_id"]) == PortalIdentity("staff", practice_id, staff_id)
