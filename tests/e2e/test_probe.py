"""`meshreg verify`'s probe script against the real registry and Envoy: its output read back and judged by the same
code `verify` uses. curl with a workload certificate stands in for the probe pod's sidecar; plain HTTP to the
node-proxy listener is the hostNetwork probe; plain HTTP to the mTLS port is the pod with no sidecar."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from meshreg.verify.objects import script
from meshreg.verify.plan import Expectation
from meshreg.verify.results import PASS, judge, parse
from support.e2e_cases import NON_WRITER, SCOPED, WRITER
from support.lab import images
from support.lab.clients import manifest_digest
from support.lab.containerd import Containerd, unavailable


@pytest.fixture(scope="session")
def curl():
    if not shutil.which("curl"):
        pytest.skip("the probe needs curl: apt-get install -y curl")


def run_probe(tmp_path, steps: list[str], *, ident=None, ca=None, env=None):
    """Run the probe script as verify's pods do (sh, PROBE_STEPS), with a client certificate if given."""
    path = tmp_path / "probe.sh"
    path.write_text(script())  # the text verify puts in its ConfigMap
    opts = f"--cacert {ca} --cert {ident.cert} --key {ident.key}" if ident else ""
    full = {**os.environ, "PROBE_STEPS": "\n".join(steps), "PROBE_CURL_OPTS": opts, "PROBE_RUN": tmp_path.name,
            "PROBE_MAX_TIME": "20", **(env or {})}
    done = subprocess.run(["sh", str(path)], env=full, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return parse(done.stdout)


def expect(want, digest=""):
    exp = Expectation("e1", "registry", "probe", "", want)
    exp.digest = digest
    return exp


def verdict(log, want, digest=""):
    return judge(expect(want, digest), log.results.get("e1"), missing="no result line")


def push(lab, tmp_path, who, repo):
    return run_probe(tmp_path, [f"e1 push https://{lab.sidecar} {repo}"], ident=lab.identity(who), ca=lab.ca.ca_file)


def test_a_writer_probe_pushes_and_the_registry_serves_the_digest_it_reports(lab, curl, tmp_path):
    log = push(lab, tmp_path, WRITER, "meshreg-verify/writer")
    v = verdict(log, "pushed")
    assert v.verdict == PASS, v.observed
    assert log.ended and manifest_digest(lab.direct, "meshreg-verify/writer", "probe") == log.results["e1"]["digest"]


def test_a_bystander_probe_gets_403_from_the_mesh_and_nothing_lands(lab, curl, tmp_path):
    log = push(lab, tmp_path, NON_WRITER, "meshreg-verify/bystander")
    v = verdict(log, "denied")
    assert v.verdict == PASS and v.observed == "layer: HTTP 403 (RBAC: access denied)"
    assert "meshreg-verify/bystander" not in lab.repositories()


def test_a_scoped_writer_probe_is_refused_outside_its_prefix_and_pushes_inside(lab, curl, tmp_path):
    assert verdict(push(lab, tmp_path, SCOPED, "meshreg-verify-outside/x"), "denied").verdict == PASS
    assert "meshreg-verify-outside/x" not in lab.repositories()
    assert verdict(push(lab, tmp_path, SCOPED, "team-a/meshreg-verify-x"), "pushed").verdict == PASS


def test_a_probe_without_a_sidecar_gets_no_http_answer_from_the_strict_port(lab, curl, tmp_path):
    log = run_probe(tmp_path, [f"e1 push http://{lab.sidecar} meshreg-verify/plain", f"e2 ping http://{lab.sidecar}"])
    for step in ("e1", "e2"):
        v = judge(expect("refused"), log.results[step], missing="")
        assert v.verdict == PASS, v.observed
    assert log.results["e1"]["curl"] in (52, 56)


def test_the_node_proxy_probe_pulls_what_the_writer_pushed_and_cannot_push(lab, curl, tmp_path):
    digest = push(lab, tmp_path, WRITER, "meshreg-verify/pulled").results["e1"]["digest"]
    log = run_probe(tmp_path, [f"e1 pull http://{lab.node_proxy} meshreg-verify/pulled {digest}",
                               f"e2 push http://{lab.node_proxy} meshreg-verify/via-node"])
    assert verdict(log, "read", digest).verdict == PASS
    assert judge(expect("denied"), log.results["e2"], missing="").verdict == PASS
    assert "meshreg-verify/via-node" not in lab.repositories()


def test_a_writer_with_the_delete_grant_deletes_the_probe_image(lab, curl, tmp_path):
    digest = push(lab, tmp_path, WRITER, "meshreg-verify/deleted").results["e1"]["digest"]
    log = run_probe(tmp_path, [f"e1 delete https://{lab.sidecar} meshreg-verify/deleted {digest}"],
                    ident=lab.identity(WRITER), ca=lab.ca.ca_file)
    assert verdict(log, "deleted").verdict == PASS
    assert manifest_digest(lab.direct, "meshreg-verify/deleted", digest) is None


class _Sidecar(BaseHTTPRequestHandler):
    """pilot-agent's two endpoints the probe uses: readiness (15021) and quitquitquit (15020)."""

    def log_message(self, *args):
        pass

    def _reply(self):
        self.server.calls.append((self.command, self.path))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _reply


def test_the_probe_waits_for_its_sidecar_and_asks_it_to_quit_after_its_last_line(lab, curl, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sidecar)
    server.calls = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        log = run_probe(tmp_path, [f"e1 ping http://{lab.node_proxy}"], env={
            "PROBE_SIDECAR": "wait", "PROBE_SIDECAR_ADMIN": url, "PROBE_SIDECAR_QUIT": f"{url}/quitquitquit"})
    finally:
        server.shutdown()
    assert log.sidecar_ready is True and log.ended
    assert server.calls == [("GET", "/healthz/ready"), ("POST", "/quitquitquit")]


@pytest.fixture(scope="module")
def containerd(tmp_path_factory):
    why = unavailable()
    if why:
        pytest.skip(f"pulling with a real runtime: {why}")
    runtime = Containerd(tmp_path_factory.mktemp("containerd"))
    try:
        yield runtime
    finally:
        runtime.close()


def test_a_real_containerd_pulls_and_unpacks_the_probe_image_through_the_node_proxy(lab, curl, containerd, tmp_path):
    digest = push(lab, tmp_path, WRITER, "meshreg-verify/kubelet").results["e1"]["digest"]
    port = lab.node_proxy.rpartition(":")[2]
    # ctr's own pull over plain HTTP; ctr defaults to overlayfs, which this containerd leaves out.
    pulled = containerd.ctr("images", "pull", "--plain-http", "--snapshotter", "native",
                            f"localhost:{port}/meshreg-verify/kubelet@{digest}")
    assert pulled.returncode == 0, pulled.stderr
    assert f"unpacking linux/{images.ARCHITECTURE} {digest}" in pulled.stdout
