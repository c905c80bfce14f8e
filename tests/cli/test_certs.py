"""`meshreg certs` and the ingress in `meshreg policy`: exit codes, refusals that write nothing, the files issued."""

from __future__ import annotations

import json
import stat

import pytest
from click.testing import CliRunner
from cryptography import x509

from meshreg.cli import main
from support.ingress_configs import CLIENTS, HOST, ingress_text


@pytest.fixture
def conf(tmp_path):
    path = tmp_path / "meshreg.yaml"
    path.write_text(ingress_text(clients=CLIENTS))
    return path


def run(*args, conf):
    result = CliRunner().invoke(main, [*args, "-c", str(conf)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def snapshot(directory) -> dict:
    """Every file under `directory` with its bytes: proof that a refusal wrote nothing."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_init_then_issue_writes_a_certs_d_directory_for_the_host(conf, tmp_path):
    assert run("certs", "init", conf=conf).exit_code == 0
    out = run("certs", "issue", "loader", conf=conf)
    assert out.exit_code == 0, out.output
    target = tmp_path / "ingress-ca" / "clients" / "loader" / HOST
    assert sorted(p.name for p in target.iterdir()) == ["client.cert", "client.key"]
    assert stat.S_IMODE((target / "client.key").stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((target / "client.cert").read_bytes())
    uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier)
    assert uris == [f"spiffe://{HOST}/client/loader"]
    assert "PRIVATE KEY" not in out.output and "BEGIN" not in out.output


def test_issue_with_the_servers_ca_writes_it_as_ca_crt(conf, tmp_path):
    run("certs", "init", conf=conf)
    server_ca = (tmp_path / "ingress-ca" / "ca.crt").read_bytes()  # any PEM certificate stands for it here
    (tmp_path / "server-ca.pem").write_bytes(server_ca)
    out = run("certs", "issue", "loader", "--output-dir", str(tmp_path / "certs.d"),
              "--server-ca", str(tmp_path / "server-ca.pem"), conf=conf)
    assert out.exit_code == 0, out.output
    assert (tmp_path / "certs.d" / HOST / "ca.crt").read_bytes() == server_ca


def test_issue_for_a_name_that_has_a_certificate_needs_force_and_writes_nothing(conf, tmp_path):
    run("certs", "init", conf=conf)
    run("certs", "issue", "loader", conf=conf)
    before = snapshot(tmp_path / "ingress-ca")
    again = run("certs", "issue", "loader", conf=conf)
    assert again.exit_code == 2 and again.output.count("\n") == 1
    assert "client 'loader' already has a valid certificate" in again.output
    assert snapshot(tmp_path / "ingress-ca") == before
    assert run("certs", "issue", "loader", "--force", conf=conf).exit_code == 0
    assert snapshot(tmp_path / "ingress-ca") != before


@pytest.mark.parametrize("args, message", [
    (("certs", "issue", "ghost"), "'ghost' is not an mtls client of spec.ingress"),
    (("certs", "issue", "bot"), "'bot' is not an mtls client"),
    (("certs", "issue", "loader", "--server-ca", "/nonexistent.pem"), "--server-ca: cannot read"),
    (("certs", "revoke", "loader"), "client 'loader': no unrevoked certificate"),
    (("certs", "init"), "already holds a CA"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(conf, tmp_path, args, message):
    run("certs", "init", conf=conf)
    before = snapshot(tmp_path)
    result = run(*args, conf=conf)
    assert result.exit_code == 2 and message in result.output and result.output.count("\n") == 1, result.output
    assert snapshot(tmp_path) == before


def test_issue_before_init_says_to_init(conf):
    result = run("certs", "issue", "loader", conf=conf)
    assert result.exit_code == 2 and "meshreg certs init" in result.output


def test_certs_without_an_ingress_in_the_config_say_so(tmp_path):
    path = tmp_path / "meshreg.yaml"
    path.write_text("apiVersion: meshreg.dev/v1alpha1\nkind: MeshRegistry\nmetadata: {name: dev}\nspec: {}\n")
    result = run("certs", "init", conf=path)
    assert result.exit_code == 2 and "no spec.ingress" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meshreg.yaml"]


def test_revoke_then_list_shows_the_revoked_certificate_and_the_client_without_one(conf, tmp_path):
    run("certs", "init", conf=conf)
    run("certs", "issue", "loader", conf=conf)
    revoked = run("certs", "revoke", "loader", conf=conf)
    assert revoked.exit_code == 0 and "revoked loader: serial" in revoked.output
    listing = json.loads(run("certs", "list", "-o", "json", conf=conf).output)
    assert [(c["name"], c["status"]) for c in listing["certificates"]] == [("loader", "revoked")]
    assert listing["withoutCertificate"] == ["loader", "team-a-ci"] and listing["crlNumber"] == 2
    assert run("certs", "issue", "loader", conf=conf).exit_code == 0  # rotation replaces the revoked files


def test_the_rendered_secret_carries_the_new_crl_after_a_revoke(conf, tmp_path):
    import base64

    import yaml

    run("certs", "init", conf=conf)
    issued = run("certs", "issue", "loader", conf=conf)
    serial = issued.output.split("serial ")[1].split(",")[0]
    run("certs", "revoke", "loader", conf=conf)
    secret = next(o for o in yaml.safe_load_all(run("render", conf=conf).stdout) if o and o["kind"] == "Secret")
    crl = x509.load_pem_x509_crl(base64.b64decode(secret["data"]["ca.crl"]))
    assert [f"{r.serial_number:x}" for r in crl] == [serial]


def test_policy_list_shows_the_ingress_clients(conf):
    run("certs", "init", conf=conf)
    data = json.loads(run("policy", "list", "-o", "json", conf=conf).output)
    clients = {c["name"]: c for c in data["ingress"]["clients"]}
    assert clients["loader"]["principal"] == f"{HOST}/client/loader" and clients["loader"]["delete"]
    assert clients["app-ci"]["claims"] == {"job_workflow_ref": ["acme/workflows/*", "acme/app/*"],
                                           "repository_owner": ["acme"]}
    text = run("policy", "list", conf=conf).output
    assert f"ingress {HOST}: through the gateway istio-system/istio-ingressgateway-service-account" in text


@pytest.mark.parametrize("identity, what, code", [("client:loader", "images/app:v1", 0),
                                                   ("client:loader", "team-a/app:v1", 3),
                                                   ("client:app-ci", "acme/app:v1", 0),
                                                   ("external", "images/app:v1", 3),
                                                   ("client:ghost", "images/app:v1", 2)])
def test_policy_check_through_the_ingress_exits_as_documented(conf, identity, what, code):
    run("certs", "init", conf=conf)
    assert run("policy", "check", "--as", identity, "push", what, conf=conf).exit_code == code


def test_policy_check_through_the_ingress_goes_to_the_registry_it_serves(tmp_path):
    from support.configs import minimal

    conf = tmp_path / "meshreg.yaml"
    conf.write_text(minimal(f"""\
  registries:
    - {{name: images, port: 5000, default: true}}
    - {{name: services, port: 5001, role: readonly}}
  ingress:
    host: {HOST}
    registry: services
    credentialName: tls
    clients: [{{name: airgap, method: mtls, repositories: [gitpod/]}}]
"""))
    run("certs", "init", conf=conf)
    assert run("policy", "check", "--as", "client:airgap", "push", "gitpod/server", conf=conf).exit_code == 0
    wrong = run("policy", "check", "--registry", "images", "--as", "client:airgap", "push", "gitpod/x", conf=conf)
    assert wrong.exit_code == 2 and "the ingress serves registry 'services' only" in wrong.output


def test_policy_list_says_mounts_are_refused_at_the_gateway(conf):
    run("certs", "init", conf=conf)
    text = run("policy", "list", conf=conf).output
    assert "reads acme/" in text and "cross-repository mounts are refused at the gateway" in text
