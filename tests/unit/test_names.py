"""Username validation and the object-name escaping (property-based: DNS-safe, bounded, collision-free)."""

import re

import pytest
from hypothesis import given, settings, strategies as st

from jovial.errors import InvalidUsername
from jovial.names import MAX_OBJECT_NAME_LENGTH, is_safe_path_component, server_object_name, validate_username

DNS_LABEL = re.compile(r"[a-z]([a-z0-9-]*[a-z0-9])?")


@pytest.mark.parametrize(
    ("username", "complaint"),
    [
        ("", "empty"),
        ("a" * 65, "65 characters"),
        ("a" * 200, "200 characters long; at most 64"),
        ("al\0ice", "NUL"),
        ("../etc", "'/'"),
        ("a/b", "'/'"),
        ("/", "'/'"),
        ("a:b", "':', which would break its line in /etc/passwd"),
        ("a,b", "',', which would break its group lines in /etc/group"),
        ("..", "not a valid directory name"),
        (".", "not a valid directory name"),
        ("al ice", "whitespace"),
        ("alice\n", "whitespace"),
        ("al\tice", "whitespace"),
        ("al\x7fice", "control"),
        ("al\u00a0ice", "whitespace"),  # no-break space
        ("al\u200bice", "control"),  # zero-width space (a format character)
    ],
)
def test_unsafe_usernames_are_refused_with_the_reason(username: str, complaint: str) -> None:
    with pytest.raises(InvalidUsername, match=re.escape(complaint)):
        validate_username(username)


@pytest.mark.parametrize("username", ["alice", "Alice", "a.b", "j@x.org", "jos\u00e9", "9lives", "a" * 64, "a..b"])
def test_odd_but_safe_usernames_are_accepted(username: str) -> None:
    assert validate_username(username) == username


def test_plain_usernames_keep_their_name() -> None:
    assert server_object_name("alice") == "jupyter-alice"
    assert server_object_name("bob-2") == "jupyter-bob-2"


@pytest.mark.parametrize("username", ["Alice", "a.b", "9lives", "a--b", "jos\u00e9", "\u65e5\u672c", "x" * 64])
def test_other_usernames_get_a_slug_and_a_hash(username: str) -> None:
    name = server_object_name(username)
    assert "--" in name and DNS_LABEL.fullmatch(name) and len(name) <= MAX_OBJECT_NAME_LENGTH


def test_hashed_names_carry_128_bits_so_pairs_with_the_same_readable_part_cannot_be_made_to_collide() -> None:
    pairs = [("john-smith", "analysis"), ("john", "smith-analysis"), ("John.Smith", ""), ("john.smith", "")]
    names = [server_object_name(*pair) for pair in pairs]
    assert len(set(names)) == len(names)
    for name in names:
        slug, _, digest = name.rpartition("--")
        assert re.fullmatch(r"[0-9a-f]{32}", digest) and slug.startswith("jupyter-john")
        assert DNS_LABEL.fullmatch(name) and len(name) <= MAX_OBJECT_NAME_LENGTH


def test_named_servers_never_collide_with_plain_names() -> None:
    assert server_object_name("a", "b") != server_object_name("a-b")
    assert server_object_name("alice", "gpu") != server_object_name("alice")


names = st.text(min_size=1, max_size=80)


@settings(max_examples=500)
@given(names, st.one_of(st.just(""), names))
def test_object_names_are_dns_labels(username: str, server: str) -> None:
    name = server_object_name(username, server)
    assert DNS_LABEL.fullmatch(name), name
    assert len(name) <= MAX_OBJECT_NAME_LENGTH


@settings(max_examples=500)
@given(st.tuples(names, st.one_of(st.just(""), names)), st.tuples(names, st.one_of(st.just(""), names)))
def test_distinct_users_and_servers_get_distinct_names(a: tuple[str, str], b: tuple[str, str]) -> None:
    if a != b:
        assert server_object_name(*a) != server_object_name(*b)


def test_case_variants_do_not_collide() -> None:
    assert len({server_object_name(n) for n in ["alice", "Alice", "ALICE", "alice."]}) == 4


@pytest.mark.parametrize(("name", "safe"), [("astro", True), ("Gaia DR3", False), ("../home/bob", False), ("..", False), ("a/b", False)])
def test_group_names_that_could_leave_their_directory_are_not_path_components(name: str, safe: bool) -> None:
    assert is_safe_path_component(name) is safe
