"""A client of the ingress reads only its read prefixes, whatever it sends: the cross-repository mount that used to
read past them is refused by the ingress route, in every spelling distribution accepts, and registry clients upload
the blob instead. Real Envoy (translated from the render), real distribution 2.8, real skopeo.

The secret is a blob in `builds/secret`, written by the in-mesh writer; `gh` (a token client) writes `acme/app/` and
reads `acme/`, `loader` (a certificate client) writes and reads `images/`. Neither may read `builds/`.
"""

from __future__ import annotations

import hashlib
import json
import subprocess

import httpx
import pytest

from support.ingress_cases import client, github
from support.lab.clients import raw_request

SECRET = b"a layer of builds/secret that no ingress client may read"
DIGEST = "sha256:" + hashlib.sha256(SECRET).hexdigest()
FROM = "builds/secret"
GO_FORM = "application/x-www-form-urlencoded"
# Every spelling of a mount that distribution's Go (Request.FormValue) accepts: names with %XX escapes in either case,
# a trailing parameter, an empty parameter in between, a form body (any letter case, charset), a multipart body.
QUERIES = [f"mount={DIGEST}&from={FROM}", f"from={FROM}&mount={DIGEST}", f"m%6Funt={DIGEST}&from=builds%2Fsecret",
           f"%6D%6F%75%6E%74={DIGEST}&%66rom={FROM}", f"%6d%6f%75%6e%74={DIGEST}&from={FROM}",
           f"x=1&&mount={DIGEST}&from={FROM}&y=/blobs/uploads/"]
BODIES = [(GO_FORM, f"mount={DIGEST}&from={FROM}".encode()),
          ("Application/X-WWW-Form-URLEncoded; charset=utf-8", f"mount={DIGEST}&from={FROM}".encode())]


@pytest.fixture(scope="module")
def secret(ingress_lab):
    """The secret blob, uploaded into builds/secret directly (no Envoy)."""
    direct = f"http://{ingress_lab.direct}"
    start = httpx.post(f"{direct}/v2/{FROM}/blobs/uploads/")
    location = httpx.URL(direct).join(start.headers["location"]).copy_merge_params({"digest": DIGEST})
    done = httpx.put(location, content=SECRET, headers={"content-type": "application/octet-stream"})
    assert done.status_code == 201, done.text
    return DIGEST


def _linked(lab, repo: str, digest: str) -> bool:
    """Whether the registry links blob `digest` into `repo` (its storage, read directly)."""
    link = lab.storage / "docker/registry/v2/repositories" / repo / "_layers" / digest.replace(":", "/") / "link"
    return link.exists()


def _readable(lab, who: str, repo: str) -> bool:
    with client(lab, who) as c:
        for method in ("HEAD", "GET"):
            response = raw_request(c, method, f"/v2/{repo}/blobs/{DIGEST}")
            if response.status_code == 200:
                return True
    return False


@pytest.mark.parametrize("who,repo", [("token:gh", "acme/app/mounted"), ("cert:loader", "images/mounted")])
@pytest.mark.parametrize("query", QUERIES)
def test_a_mount_from_outside_the_read_prefixes_is_refused_in_every_spelling(ingress_lab, secret, who, repo, query):
    with client(ingress_lab, who) as c:
        response = raw_request(c, "POST", f"/v2/{repo}/blobs/uploads/?{query}")
    assert response.status_code == 401 and "www-authenticate" not in response.headers, response.text
    assert response.text == "fault filter abort"  # the gateway's route, not the registry
    assert not _linked(ingress_lab, repo, secret) and not _readable(ingress_lab, who, repo)


@pytest.mark.parametrize("content_type,body", BODIES, ids=["form", "form-mixed-case"])
def test_a_mount_in_a_form_body_is_refused(ingress_lab, secret, content_type, body):
    with client(ingress_lab, "token:gh") as c:
        response = raw_request(c, "POST", "/v2/acme/app/form/blobs/uploads/", content=body,
                               headers={"content-type": content_type})
    assert response.status_code == 401, response.text
    assert not _linked(ingress_lab, "acme/app/form", secret) and not _readable(ingress_lab, "token:gh", "acme/app/form")


def test_a_mount_in_a_multipart_body_is_refused(ingress_lab, secret):
    with client(ingress_lab, "token:gh") as c:
        response = c.post("/v2/acme/app/multipart/blobs/uploads/", files={"mount": (None, secret),
                                                                           "from": (None, FROM)})
    assert response.status_code == 401, response.text
    assert not _linked(ingress_lab, "acme/app/multipart", secret)


def test_the_registry_behind_the_gateway_would_have_mounted_them(ingress_lab, secret):
    """The refusals matter: straight to distribution, the same spellings and bodies do link the secret."""
    direct = f"http://{ingress_lab.direct}"
    for i, query in enumerate(QUERIES):
        assert httpx.post(f"{direct}/v2/probe/q{i}/blobs/uploads/?{query}").status_code == 201, query
    for i, (content_type, body) in enumerate(BODIES):
        response = httpx.post(f"{direct}/v2/probe/b{i}/blobs/uploads/", content=body,
                              headers={"content-type": content_type})
        assert response.status_code == 201, content_type
    assert httpx.get(f"{direct}/v2/probe/q0/blobs/{secret}").content == SECRET


def test_the_secret_is_not_read_directly_nor_through_a_manifest(ingress_lab, secret):
    assert not _readable(ingress_lab, "token:gh", FROM)
    assert not _readable(ingress_lab, "cert:loader", FROM)
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": secret,
                           "size": len(SECRET)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": secret,
                            "size": len(SECRET)}]}
    with client(ingress_lab, "token:gh") as c:
        put = c.put("/v2/acme/app/by-manifest/manifests/v1", content=json.dumps(manifest),
                    headers={"content-type": manifest["mediaType"]})
        assert put.status_code == 400 and "BLOB_UNKNOWN" in put.text, put.text
    assert not _readable(ingress_lab, "token:gh", "acme/app/by-manifest")


def test_a_token_in_the_query_string_is_refused(ingress_lab):
    """The route refuses `?access_token=` where the policies let the request through: the ping, and a request that
    also carries the token where it belongs (so the query's copy is never forwarded to the registry)."""
    bearer = github()
    with client(ingress_lab, "none") as c:
        ping = raw_request(c, "GET", f"/v2/?access_token={bearer}")
        both = raw_request(c, "GET", f"/v2/acme/app/tags/list?access_token={bearer}",
                           headers={"authorization": f"Bearer {bearer}"})
        header_only = raw_request(c, "GET", "/v2/acme/app/tags/list", headers={"authorization": f"Bearer {bearer}"})
    for response in (ping, both):
        assert response.status_code == 400 and response.text == "fault filter abort", response.text
    assert header_only.status_code not in (400, 401, 403), header_only.text


def test_a_token_in_the_query_string_is_not_a_credential(ingress_lab):
    """Envoy's JWT filter reads `?access_token=` by default; the RequestAuthentication names only the Authorization
    header (fromHeaders), so a valid token in the query leaves the request without a credential: 403, before the
    route that would refuse it."""
    with client(ingress_lab, "none") as c:
        response = raw_request(c, "POST", f"/v2/acme/app/blobs/uploads/?access_token={github()}")
    assert response.status_code == 403, response.text


def test_skopeo_uploads_the_blob_when_its_mount_is_refused(ingress_lab, image):
    """skopeo knows the image's blobs are in acme/app/base (it pushed them there), so for acme/app/copy it tries a
    mount first; the route refuses it with 401 and skopeo uploads the blob instead."""
    bearer = github()
    argv = ["skopeo", "--debug", "--insecure-policy", "copy", "--preserve-digests", "--retry-times", "0",
            "--dest-tls-verify=true", "--dest-cert-dir", str(ingress_lab.server_ca_dir),
            "--dest-registry-token", bearer, image.ref]
    for repo in ("acme/app/base", "acme/app/copy"):
        result = subprocess.run([*argv, f"docker://{ingress_lab.ingress}/{repo}:v1"], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
    assert "Trying to mount" in result.stderr and "Mount failed" in result.stderr, result.stderr[-3000:]
    with client(ingress_lab, "token:gh") as c:
        assert c.get("/v2/acme/app/copy/manifests/v1",
                     headers={"accept": "application/vnd.oci.image.manifest.v1+json"}).status_code == 200
