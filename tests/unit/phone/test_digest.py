"""Digest answers checked against the RFCs' own worked examples."""

import pytest

from server.phone.digest import DigestError, authorization, parse_challenge


def test_rfc_2617_example_md5_qop_auth() -> None:
    challenge = parse_challenge(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    header = authorization(challenge, "GET", "/dir/index.html", "Mufasa", "Circle Of Life",
                           cnonce="0a4f113b")  # fmt: skip
    assert 'response="6629fae49393a05397450978507c4ef1"' in header
    assert "qop=auth" in header and "nc=00000001" in header
    assert 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in header


def test_rfc_7616_example_sha256() -> None:
    challenge = parse_challenge(
        'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )
    header = authorization(challenge, "GET", "/dir/index.html", "Mufasa", "Circle of Life",
                           cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")  # fmt: skip
    assert 'response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"' in header


@pytest.mark.parametrize(
    "header",
    ['Basic realm="x"', 'Digest realm="x", nonce="n", algorithm=SHA-512-256',
     'Digest realm="x", nonce="n", qop="auth-int"', 'Digest nonce="n"'],
)  # fmt: skip
def test_challenges_we_cannot_answer(header: str) -> None:
    with pytest.raises(DigestError):
        parse_challenge(header)
