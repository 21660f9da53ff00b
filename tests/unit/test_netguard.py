"""The SSRF guard's address check, tested on the check itself: no request ever goes out."""

from __future__ import annotations

import ipaddress

import pytest

from service.errors import BadRequest, RefusedAddress
from service.netguard import Target, check_address, is_public, resolve


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1", "172.16.5.4", "192.168.1.1", "127.0.0.1", "127.8.8.8", "169.254.169.254", "0.0.0.0",
        "100.64.0.1", "224.0.0.1", "255.255.255.255", "::1", "::", "fc00::1", "fd12:3456::1", "fe80::1",
        "::ffff:10.0.0.1", "::ffff:169.254.169.254", "ff02::1",
    ],
)
def test_internal_addresses_are_refused(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert not is_public(ip)
    with pytest.raises(RefusedAddress):
        check_address(ip, allow_private=False)
    check_address(ip, allow_private=True)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


async def test_literal_internal_hosts_are_refused_before_any_connection() -> None:
    for url in ("http://169.254.169.254/latest/meta-data", "http://[::1]:8080/", "https://10.1.2.3/x"):
        with pytest.raises(RefusedAddress):
            await resolve(url, allow_private=False)


async def test_names_resolving_to_loopback_are_refused() -> None:
    with pytest.raises(RefusedAddress):
        await resolve("http://localhost:9/", allow_private=False)


async def test_other_schemes_and_credentials_are_refused() -> None:
    for url in ("file:///etc/passwd", "gopher://x/", "http://user:pw@example.com/"):
        with pytest.raises(BadRequest):
            await resolve(url, allow_private=False)


def test_the_connection_goes_to_the_checked_address_with_the_name_kept() -> None:
    target = Target("https://docs.example:8443/a/b.pdf?x=1", "docs.example", ipaddress.ip_address("93.184.216.34"))
    assert target.pinned_url == "https://93.184.216.34:8443/a/b.pdf?x=1"
    v6 = Target("http://docs.example/", "docs.example", ipaddress.ip_address("2606:4700::1"))
    assert v6.pinned_url == "http://[2606:4700::1]/"
