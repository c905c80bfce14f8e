"""The ingress client CA: what `meshreg certs` creates, issues and revokes, checked with cryptography and openssl."""

from __future__ import annotations

import datetime
import shutil
import stat
import subprocess

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from meshreg.errors import UsageError
from meshreg.pki import certsd
from meshreg.pki.authority import Authority, client_uri
from meshreg.pki.material import public_material

DOMAIN = "registry.example.com"
URI = client_uri(DOMAIN, "ci")


@pytest.fixture
def ca(tmp_path) -> Authority:
    return Authority.create(tmp_path / "ca", domain=DOMAIN, days=365)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_writes_a_ca_whose_key_only_its_owner_reads_and_git_ignores(ca):
    d = ca.directory
    assert sorted(p.name for p in d.iterdir()) == [".gitignore", "ca.crl", "ca.crt", "ca.key", "index.json"]
    assert (_mode(d / "ca.key"), _mode(d)) == (0o600, 0o700)
    assert (d / ".gitignore").read_text().split() == ["ca.key", "clients/"]
    constraints = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0
    assert ca.cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign


def test_init_never_overwrites_a_ca(ca):
    before = (ca.directory / "ca.key").read_bytes()
    with pytest.raises(UsageError, match="already holds a CA"):
        Authority.create(ca.directory, domain=DOMAIN, days=1)
    assert (ca.directory / "ca.key").read_bytes() == before


def test_a_client_certificate_names_the_client_by_its_uri_san_and_only_authenticates_clients(ca):
    issued, pem, key = ca.issue("ci", uri=URI, days=30)
    cert = x509.load_pem_x509_certificate(pem)
    cert.verify_directly_issued_by(ca.cert)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [URI] and len(list(sans)) == 1
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert f"{cert.serial_number:x}" == issued.serial and b"PRIVATE KEY" in key
    assert cert.not_valid_after_utc - cert.not_valid_before_utc < datetime.timedelta(days=31)


def test_a_certificate_never_outlives_its_ca(ca):
    cert = x509.load_pem_x509_certificate(ca.issue("ci", uri=URI, days=3650)[1])
    assert cert.not_valid_after_utc == ca.cert.not_valid_after_utc


def test_a_second_certificate_for_a_name_needs_force(ca):
    first = ca.issue("ci", uri=URI, days=30)[0]
    with pytest.raises(UsageError, match=f"client 'ci' already has a valid certificate \\(serial {first.serial}"):
        ca.issue("ci", uri=URI, days=30)
    assert len(Authority.open(ca.directory).issued) == 1
    ca.issue("ci", uri=URI, days=30, force=True)
    assert len(Authority.open(ca.directory).valid("ci")) == 2


def test_an_expired_certificate_does_not_block_a_new_one(ca):
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=10)
    old = ca.issue("ci", uri=URI, days=1, now=past)[0]
    assert old.status(datetime.datetime.now(datetime.timezone.utc)) == "expired"
    assert ca.issue("ci", uri=URI, days=1)[0].serial != old.serial


def test_revoking_puts_every_certificate_of_a_name_on_a_new_signed_crl(ca):
    a = ca.issue("ci", uri=URI, days=30)[0]
    b = ca.issue("ci", uri=URI, days=30, force=True)[0]
    other = ca.issue("other", uri=client_uri(DOMAIN, "other"), days=30)[0]
    assert {i.serial for i in ca.revoke("ci")} == {a.serial, b.serial}
    crl = x509.load_pem_x509_crl((ca.directory / "ca.crl").read_bytes())
    assert crl.is_signature_valid(ca.cert.public_key())
    assert {f"{r.serial_number:x}" for r in crl} == {a.serial, b.serial}
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    assert crl.next_update_utc == ca.cert.not_valid_after_utc
    assert [i.status(datetime.datetime.now(datetime.timezone.utc)) for i in Authority.open(ca.directory).issued] == [
        "revoked", "revoked", "valid"] and other.revoked is None


def test_revoking_one_serial_leaves_the_others(ca):
    a = ca.issue("ci", uri=URI, days=30)[0]
    b = ca.issue("ci", uri=URI, days=30, force=True)[0]
    ca.revoke("ci", serial=a.serial.upper())
    assert [i.serial for i in Authority.open(ca.directory).valid("ci")] == [b.serial]


def test_revoking_what_is_not_there_changes_nothing(ca):
    crl = (ca.directory / "ca.crl").read_bytes()
    with pytest.raises(UsageError, match="client 'ci': no unrevoked certificate"):
        ca.revoke("ci")
    assert (ca.directory / "ca.crl").read_bytes() == crl


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command (apt-get install openssl)")
def test_openssl_accepts_an_issued_certificate_until_the_crl_lists_it(ca, tmp_path):
    _, pem, _ = ca.issue("ci", uri=URI, days=30)
    (tmp_path / "client.pem").write_bytes(pem)

    def verify() -> subprocess.CompletedProcess:
        return subprocess.run(["openssl", "verify", "-crl_check", "-CAfile", str(ca.directory / "ca.crt"),
                               "-CRLfile", str(ca.directory / "ca.crl"), "-purpose", "sslclient",
                               str(tmp_path / "client.pem")], capture_output=True, text=True)

    assert verify().returncode == 0, verify().stdout + verify().stderr
    ca.revoke("ci")
    refused = verify()
    assert refused.returncode != 0 and "certificate revoked" in refused.stdout + refused.stderr


def test_public_material_is_the_certificate_and_crl_or_nothing(ca, tmp_path):
    assert public_material(tmp_path / "nowhere") is None
    cert, crl = public_material(ca.directory)
    assert cert == (ca.directory / "ca.crt").read_text() and "X509 CRL" in crl and "PRIVATE" not in cert + crl


def test_signing_without_the_key_says_where_it_should_be(ca):
    (ca.directory / "ca.key").unlink()
    with pytest.raises(UsageError, match=r"the CA key \(ca.key\) is not here"):
        Authority.open(ca.directory).issue("ci", uri=URI, days=1)


def test_opening_a_directory_without_a_ca_says_how_to_make_one(tmp_path):
    with pytest.raises(UsageError, match=r"no CA there .* `meshreg certs init`"):
        Authority.open(tmp_path)


def test_certs_d_files_keep_the_key_private_and_are_not_overwritten_while_valid(ca, tmp_path):
    _, pem, key = ca.issue("ci", uri=URI, days=30)
    written = certsd.write(tmp_path / "out", DOMAIN, cert=pem, key=key, server_ca=None)
    assert [p.name for p in written] == ["client.cert", "client.key"]
    assert _mode(tmp_path / "out" / DOMAIN / "client.key") == 0o600
    with pytest.raises(UsageError, match=r"client.cert already exists"):
        certsd.check_free(tmp_path / "out", DOMAIN, force=False, spent=ca.spent)
    ca.revoke("ci")
    certsd.check_free(tmp_path / "out", DOMAIN, force=False, spent=ca.spent)  # a revoked one may be replaced
