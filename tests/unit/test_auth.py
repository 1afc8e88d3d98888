import time

import jwt
import pytest

from server.auth import Grant, Role, TokenIssuer, is_admin_key
from server.errors import Forbidden, Unauthorized

SECRET = "unit-secret-0123456789abcdefghijklmn"


def test_issued_token_verifies_with_its_claims() -> None:
    issuer = TokenIssuer(SECRET, 3600)
    token, claims = issuer.issue("room-1", "ada", "Ada L.", Role.MENTOR)
    verified = issuer.verify(token)
    assert verified == claims
    assert verified.room == "room-1" and verified.identity == "ada" and verified.name == "Ada L."
    assert verified.expires_at - time.time() == pytest.approx(3600, abs=5)


def test_expired_token_is_refused_with_its_reason() -> None:
    issuer = TokenIssuer(SECRET, 3600)
    payload = {
        "iss": "pairwise",
        "exp": int(time.time()) - 10,
        "iat": int(time.time()) - 100,
        "sub": "ada",
        "jti": "x",
        "room": "r",
        "name": "Ada",
        "role": "mentee",
    }
    token = jwt.encode(payload, SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized) as err:
        issuer.verify(token)
    assert err.value.code == "token_expired"


def test_tampered_token_is_refused() -> None:
    issuer = TokenIssuer(SECRET, 3600)
    token, _ = issuer.issue("room-1", "ada", "Ada", Role.MENTEE)
    header, payload, signature = token.split(".")
    forged_payload = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(payload).replace(b"mentee", b"mentor")
    ).decode()
    with pytest.raises(Unauthorized) as err:
        issuer.verify(f"{header}.{forged_payload}.{signature}")
    assert err.value.code == "token_invalid"
    other = TokenIssuer("another-secret-0123456789abcdefghijkl", 3600)
    with pytest.raises(Unauthorized):
        other.verify(token)


@pytest.mark.parametrize("token", [None, "", 42, {"a": 1}, "not.a.jwt"])
def test_missing_or_garbage_token(token: object) -> None:
    with pytest.raises(Unauthorized) as err:
        TokenIssuer(SECRET, 60).verify(token)
    assert err.value.code in ("token_missing", "token_invalid")


def test_token_with_unknown_role_is_invalid() -> None:
    payload = {
        "iss": "pairwise",
        "exp": int(time.time()) + 60,
        "iat": int(time.time()),
        "sub": "x",
        "jti": "j",
        "room": "r",
        "name": "X",
        "role": "superuser",
    }
    with pytest.raises(Unauthorized):
        TokenIssuer(SECRET, 60).verify(jwt.encode(payload, SECRET, algorithm="HS256"))


def test_grants_per_role() -> None:
    issuer = TokenIssuer(SECRET, 60)
    observer = issuer.verify(issuer.issue("r", "o", "Obs", Role.OBSERVER)[0])
    mentee = issuer.verify(issuer.issue("r", "m", "Mentee", Role.MENTEE)[0])
    assert not observer.can(Grant.PUBLISH)
    with pytest.raises(Forbidden):
        observer.require(Grant.PUBLISH)
    assert mentee.can(Grant.PUBLISH) and mentee.can(Grant.CHAT)
    assert not mentee.can(Grant.MODERATE)


def test_admin_key_check() -> None:
    # The route guard (api/access.py) reads the Bearer header; the route walk in
    # tests/security/test_route_access.py calls every route with no key and a wrong one.
    assert is_admin_key("k" * 20, "k" * 20)
    for given in ("", "k" * 19, "k" * 21, "K" * 20, "wrong"):
        assert not is_admin_key("k" * 20, given)
