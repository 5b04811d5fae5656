"""Reading request targets (sidecar/core/target.py): which targets read one way, and which
spellings of a guarded path are that path."""

from __future__ import annotations

import pytest

from sidecar.core.target import (
    PAR,
    TOKEN,
    GuardedPath,
    GuardedPaths,
    Target,
    lenient_path,
    read_target,
)
from sidecar.errors import OAuthError

# (target as sent, the result code of its refusal)
REFUSED = [
    ("http://as.example.com/token", "request.target_form"),
    ("HTTP://as.example.com:8443/token?x=1", "request.target_form"),
    ("*", "request.target_form"),
    ("as.example.com:443", "request.target_form"),
    ("", "request.target_form"),
    ("token", "request.target_form"),
    ("//token", "request.path_empty_segment"),
    ("/token//", "request.path_empty_segment"),
    ("/a//b", "request.path_empty_segment"),
    ("/token;x", "request.path_parameters"),
    ("/..;/token", "request.path_parameters"),
    ("/token;jsessionid=1", "request.path_parameters"),
    ("/./token", "request.path_dot_segment"),
    ("/a/../token", "request.path_dot_segment"),
    ("/token/.", "request.path_dot_segment"),
    ("/token/..", "request.path_dot_segment"),
    ("/token%2F", "request.path_encoded_delimiter"),
    ("/token%2f", "request.path_encoded_delimiter"),
    ("/%2e/token", "request.path_encoded_delimiter"),
    ("/%2E%2E/token", "request.path_encoded_delimiter"),
    ("/token%2e", "request.path_encoded_delimiter"),
    ("/token%5C", "request.path_encoded_delimiter"),
    ("/token%00", "request.path_encoded_delimiter"),
    ("/token%0a", "request.path_encoded_delimiter"),
    ("/token%7F", "request.path_encoded_delimiter"),
    ("/token%252F", "request.path_encoded_delimiter"),  # an upstream that decodes twice
    ("/%252e%252e/token", "request.path_encoded_delimiter"),
    ("/token%253B", "request.path_parameters"),
    ("/token%3Bx", "request.path_parameters"),
    ("/token\\", "request.path_characters"),
    ("/a\\..\\token", "request.path_characters"),
    ("/to ken", "request.path_characters"),
    ("/token\x00", "request.path_characters"),
    ("/tok\u00e9n", "request.path_characters"),
    ("/token#x", "request.path_characters"),
    ("/{token}", "request.path_characters"),
    ("/token%", "request.path_encoding"),
    ("/token%zz", "request.path_encoding"),
    ("/token%4", "request.path_encoding"),
    ("/token%C0%AF", "request.path_encoding"),  # overlong '/'
    ("/token%FF", "request.path_encoding"),
    ("/token%25252525252F", "request.path_encoding"),  # decodes on and on
    ("/a%EF%BC%8F..%EF%BC%8Ftoken", "request.path_dot_segment"),  # full-width solidus
    ("/token?a=b#frag", "request.query_characters"),
    ("/token?a=\x01", "request.query_characters"),
    ("/token?a=b c", "request.query_characters"),
    ("/token?a=\u00e9", "request.query_characters"),
]


@pytest.mark.parametrize(("raw", "result_code"), REFUSED)
def test_targets_that_read_more_than_one_way_are_invalid_request(raw: str,
                                                                 result_code: str) -> None:
    refused = read_target(raw)
    assert isinstance(refused, OAuthError)
    assert (refused.status, refused.code, refused.result_code) == \
        (400, "invalid_request", result_code)


# (target as sent, path, query, how a lenient server reads the path)
READ = [
    ("/token", "/token", None, "/token"),
    ("/token?", "/token", "", "/token"),
    ("/token?tenant=a&x=%zz", "/token", "tenant=a&x=%zz", "/token"),
    ("/token?filter[a]={b}|c", "/token", "filter[a]={b}|c", "/token"),
    ("/", "/", None, ""),
    ("/TOKEN", "/TOKEN", None, "/token"),
    ("/token/", "/token/", None, "/token"),
    ("/token.", "/token.", None, "/token"),
    ("/token%20", "/token%20", None, "/token"),
    ("/Token%20/", "/Token%20/", None, "/token"),
    ("/token%C2%A0", "/token%C2%A0", None, "/token"),  # no-break space
    ("/%74oken", "/%74oken", None, "/token"),
    ("/%2574oken", "/%2574oken", None, "/token"),  # decoded twice
    ("/%EF%BD%94oken", "/%EF%BD%94oken", None, "/token"),  # full-width t
    ("/a.b/c..d/.well-known/x", "/a.b/c..d/.well-known/x", None, "/a.b/c..d/.well-known/x"),
    ("/token.json", "/token.json", None, "/token"),  # Spring's suffix pattern match
    ("/Token.JSON./", "/Token.JSON./", None, "/token"),
    ("/.well-known/jwks.json", "/.well-known/jwks.json", None, "/.well-known/jwks"),
    ("/.hidden", "/.hidden", None, "/.hidden"),
    ("/files/50%25off", "/files/50%25off", None, "/files/50%off"),
    ("/caf%C3%A9", "/caf%C3%A9", None, "/caf\u00e9"),
    ("/a:b@c!$&'()*+,=~-_", "/a:b@c!$&'()*+,=~-_", None, "/a:b@c!$&'()*+,=~-_"),
]


@pytest.mark.parametrize(("raw", "path", "query", "lenient"), READ)
def test_targets_that_read_one_way(raw: str, path: str, query: str | None,
                                   lenient: str) -> None:
    assert read_target(raw) == Target(path, query, lenient)


@pytest.mark.parametrize("path", ["/", "/token", "/TOKEN/", "/a/B_c~d-e/", "/%74oken",
                                  "/Token.", "/x/y%20", "/caf%C3%89/"])
def test_plain_and_full_readings_agree(path: str) -> None:
    """Plain paths take a shortcut (no decoding); it must read them as the full reading does."""
    assert _target(path).lenient == lenient_path(path)


def _target(raw: str) -> Target:
    target = read_target(raw)
    assert isinstance(target, Target)
    return target


GUARDED = [GuardedPath(TOKEN, "/token"), GuardedPath(PAR, "/oauth/PAR"),
           GuardedPath("unset", "")]


@pytest.mark.parametrize(("raw", "name"), [
    ("/token", TOKEN), ("/TOKEN", TOKEN), ("/token/", TOKEN), ("/token.", TOKEN),
    ("/token%20", TOKEN), ("/ToKeN./", TOKEN), ("/%74oken", TOKEN), ("/token?x=1", TOKEN),
    ("/token.json", TOKEN), ("/oauth/par.do", PAR),
    ("/oauth/PAR", PAR), ("/oauth/par", PAR), ("/OAUTH/par/", PAR),
    ("/tokens", None), ("/token/x", None), ("/oauth", None), ("/", None), ("/par", None),
])
def test_lenient_matching_finds_the_guarded_path(raw: str, name: str | None) -> None:
    guarded = GuardedPaths(GUARDED, exact=False).route(_target(raw))
    assert not isinstance(guarded, OAuthError)
    assert (guarded.name if guarded else None) == name


@pytest.mark.parametrize(("raw", "answer"), [
    ("/token", TOKEN), ("/token?x=1", TOKEN), ("/oauth/PAR", PAR), ("/other", None),
    ("/TOKEN", "refused"), ("/token/", "refused"), ("/oauth/par", "refused"),
    ("/%74oken", "refused"),
])
def test_exact_matching_refuses_near_misses(raw: str, answer: str | None) -> None:
    guarded = GuardedPaths(GUARDED, exact=True).route(_target(raw))
    if answer == "refused":
        assert isinstance(guarded, OAuthError)
        assert (guarded.code, guarded.result_code) == ("invalid_request",
                                                       "request.path_not_exact")
    else:
        assert not isinstance(guarded, OAuthError)
        assert (guarded.name if guarded else None) == answer


def test_the_first_of_two_paths_that_read_the_same_wins() -> None:
    paths = GuardedPaths([GuardedPath(TOKEN, "/token"), GuardedPath(PAR, "/Token")],
                         exact=False)
    guarded = paths.route(_target("/Token"))
    assert isinstance(guarded, GuardedPath)
    assert guarded.name == TOKEN
