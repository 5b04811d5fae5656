"""The store.url grammar (sidecar.adapters.redis.urls): every deployment, and errors that never
show the password."""

from __future__ import annotations

import pytest

from sidecar.adapters.redis.urls import RedisURL, parse_url

SECRET = "hunter2-secret"  # a password that must never show


@pytest.mark.parametrize(("url", "expected"), [
    ("redis://localhost", RedisURL("redis", (("localhost", 6379),))),
    ("rediss://u:p@h.example:6380/2", RedisURL("rediss", (("h.example", 6380),), "u", "p", db=2,
                                               tls=True)),
    ("redis://[::1]:7000/0", RedisURL("redis", (("::1", 7000),))),
    ("redis://:p%40ss%2F@h", RedisURL("redis", (("h", 6379),), None, "p@ss/")),
    ("redis://:p@ss/w:rd#?@h", RedisURL("redis", (("h", 6379),), None, "p@ss/w:rd#?")),
    ("redis://h/0?socket_timeout=0.5", RedisURL("redis", (("h", 6379),),
                                                options=(("socket_timeout", "0.5"),))),
    ("redis+sentinel://s1:26380,s2,[fe80::1]:26381/mymaster",
     RedisURL("redis+sentinel", (("s1", 26380), ("s2", 26379), ("fe80::1", 26381)),
              service_name="mymaster")),
    ("REDIS+SENTINEL://alice:pw@10.0.0.1:26379/my%20master?db=4&tls=true",
     RedisURL("redis+sentinel", (("10.0.0.1", 26379),), "alice", "pw",
              service_name="my master", db=4, tls=True)),
    ("redis+cluster://n1:7000,n2:7001,[::1]", RedisURL(
        "redis+cluster", (("n1", 7000), ("n2", 7001), ("::1", 6379)))),
    ("redis+cluster://:pw@n1:7000/?tls=false", RedisURL(
        "redis+cluster", (("n1", 7000),), None, "pw")),
    ("redis+cluster://bob@n1", RedisURL("redis+cluster", (("n1", 6379),), "bob")),
])
def test_parse_good_urls(url: str, expected: RedisURL) -> None:
    assert parse_url(url) == expected


@pytest.mark.parametrize(("url", "message"), [
    ("http://h", "the scheme must be one of"),
    (f"{SECRET}", "the scheme must be one of"),
    ("redis+sentinel://u:{p}@/mymaster", "no host"),
    ("redis+sentinel://u:{p}@h1:26379,,h2/mymaster", "host 2 of 3: empty host name"),
    ("redis+sentinel://u:{p}@h1:{p}/mymaster", "host 1 of 1: the port must be a number"),
    ("redis+sentinel://u:{p}@h1:0/mymaster", "the port must be a number from 1 to 65535"),
    ("redis+sentinel://u:{p}@h1:70000/mymaster", "the port must be a number from 1 to 65535"),
    ("redis+sentinel://u:{p}@h1:/mymaster", "the port must be a number"),
    ("redis+sentinel://u:{p}@::1:26379/mymaster", "must be in brackets"),
    ("redis+sentinel://u:{p}@[::1/mymaster", "'[' without ']'"),
    ("redis+sentinel://u:{p}@[{p}]:1/mymaster", "not an IPv6 address"),
    ("redis+sentinel://u:{p}@[::1]x/mymaster", "expected ':port' after ']'"),
    ("redis+sentinel://u:{p}@h{p}!:1/mymaster", "not a valid host name"),
    ("redis+sentinel://u:{p}@h1:26379", "needs the service name"),
    ("redis+sentinel://u:{p}@h1:26379/", "needs the service name"),
    ("redis+sentinel://u:{p}@h1:26379/a/b", "needs the service name"),
    ("redis+sentinel://u:{p}@h1/m?db=x", "db query parameter must be a database number"),
    ("redis+sentinel://u:{p}@h1/m?db=1&db=2", "'db' is given twice"),
    ("redis+sentinel://u:{p}@h1/m?password={p}", "unknown query parameter 'password'"),
    ("redis+sentinel://u:{p}@h1/m?{p}=1", "unknown query parameter a query parameter"),
    ("redis+sentinel://u:{p}@h1/m?tls=maybe", "tls must be true or false"),
    ("redis+sentinel://u:{p}@h1/m?{p}", "the query string is not name=value pairs"),
    ("redis+sentinel://u:{p}@h1/m#{p}", "a fragment"),
    ("redis+cluster://u:{p}@h1:7000/0", "takes no path"),
    ("redis+cluster://u:{p}@h1:7000?db=0", "unknown query parameter 'db'"),
    ("redis://u:{p}@h1,h2", "takes one host"),
    ("redis://u:{p}@h1/db{p}", "the path must be a database number"),
    ("redis://u:{p}@h1/0?no_such_option=1", "unknown query parameter 'no_such_option'"),
    # A mistyped separator: nothing of what might be a password is quoted.
    ("redis+sentinel://u:{p}/h1:1/m", "the port must be a number"),
    ("redis+cluster://{p}:{p}", "the port must be a number"),
])
def test_parse_bad_urls_never_shows_the_password(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"store\.url") as info:
        parse_url(url.replace("{p}", SECRET))
    assert message in str(info.value)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)


def test_the_password_is_not_in_the_repr() -> None:
    parsed = parse_url(f"redis+cluster://u:{SECRET}@h:1")
    assert parsed.password == SECRET
    assert SECRET not in repr(parsed)
