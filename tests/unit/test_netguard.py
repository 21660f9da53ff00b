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


@pytest.mark.parametrize(
    "address",
    [
        # 6to4 (2002::/16) carries an IPv4 address in bits 16-48: loopback, metadata, private.
        "2002:7f00:1::1", "2002:a9fe:a9fe::1", "2002:a00:1::", "2002:c0a8:101::1", "2002::1",
        # Teredo (2001::/32): server 127.0.0.1; and a client 10.0.0.1 (stored inverted) behind a public server.
        "2001:0:7f00:1::80ff:fffe", "2001:0:808:808::f5ff:fffe",
        # NAT64's well-known prefix (64:ff9b::/96) with a non-public IPv4; the local-use prefix 64:ff9b:1::/48.
        "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b::a00:1", "64:ff9b::c0a8:101", "64:ff9b:1::808:808",
        # Site-local (fec0::/10), deprecated but still routed inside some networks.
        "fec0::1", "fed0::1", "feff:ffff::1",
    ],
)
def test_addresses_embedding_internal_ipv4_and_site_local_are_refused(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert not is_public(ip)
    with pytest.raises(RefusedAddress):
        check_address(ip, allow_private=False)


@pytest.mark.parametrize("address", ["2002:808:808::1", "64:ff9b::808:808", "64:ff9b::5db8:d822"])
def test_translated_forms_of_public_ipv4_pass(address: str) -> None:
    # An IPv6-only network with DNS64 reaches every IPv4-only host through 64:ff9b::/96.
    assert is_public(ipaddress.ip_address(address))


async def test_malformed_urls_are_bad_requests_not_crashes() -> None:
    for url in (
        "http://docs.invalid:99999/",
        "http://docs.invalid:0/",
        "http://docs.invalid:٣/",
        "http://[::1/",
        "http://[zz]/",
        "http://[::1]x/",
        "http://" + "a" * 64 + ".invalid/",
    ):
        with pytest.raises(BadRequest):
            await resolve(url, allow_private=True)
