#!/bin/sh
# meshreg verify's probe: speaks the registry HTTP API with curl and prints what it observed, one JSON object per
# line prefixed "meshreg-probe ". It judges nothing; `meshreg verify` reads these lines back from the pod's log.
#
# Steps come from PROBE_STEPS, one per line: ID VERB BASE REPO [REF]
#   push    upload a tiny image (an empty layer and a config) to BASE/v2/REPO, put its manifest as tag PROBE_TAG,
#           then read the manifest back; stops at the first answer that is not a success
#   pull    GET BASE/v2/REPO/manifests/REF
#   ping    GET BASE/v2/
#   delete  DELETE BASE/v2/REPO/manifests/REF
# Environment: PROBE_SIDECAR=wait (wait for the Istio sidecar, ask it to quit at the end) or none;
# PROBE_ARCH/PROBE_OS for the image config (default: this machine); PROBE_RUN (a label in the config);
# PROBE_CURL_OPTS (extra curl options, e.g. a client certificate); PROBE_MAX_TIME (seconds per request).
# Needs sh, curl, sha256sum, head, tr, cut, grep, wc.
set -u
PREFIX="meshreg-probe"
MAXTIME=${PROBE_MAX_TIME:-30}
ADMIN=${PROBE_SIDECAR_ADMIN:-http://127.0.0.1:15021}
QUIT=${PROBE_SIDECAR_QUIT:-http://127.0.0.1:15020/quitquitquit}
TAG=${PROBE_TAG:-probe}
OCI_MANIFEST="application/vnd.oci.image.manifest.v1+json"
ACCEPT="$OCI_MANIFEST, application/vnd.docker.distribution.manifest.v2+json"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/meshreg-probe.XXXXXX") || exit 3
trap 'rm -rf "$TMP"' EXIT

say() { printf '%s %s\n' "$PREFIX" "$1"; }
clean() { tr -d '\000-\037"\\' | cut -c1-200; }  # a one-line, JSON-safe excerpt

# request METHOD URL [curl args]: sets STATUS (0: no HTTP answer), CURL (its exit code), ERR, BODY
request() {
  method=$1; url=$2; shift 2
  : > "$TMP/h"; : > "$TMP/b"
  # shellcheck disable=SC2086  # PROBE_CURL_OPTS is a list of options
  STATUS=$(curl -sS -X "$method" --max-time "$MAXTIME" ${PROBE_CURL_OPTS:-} -D "$TMP/h" -o "$TMP/b" \
    -w '%{http_code}' "$@" "$url" 2>"$TMP/e")
  CURL=$?
  case $STATUS in ''|000) STATUS=0;; esac  # no HTTP answer (and a JSON number, not 000)
  ERR=$(clean < "$TMP/e")
  BODY=$(clean < "$TMP/b")
}
header() { grep -i "^$1:" "$TMP/h" | tail -n 1 | cut -d: -f2- | tr -d ' \r'; }
digest() { echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }
size() { wc -c < "$1" | tr -d ' '; }

# stopped ID VERB STEP: the result line of a step that did not succeed
stopped() {
  if [ "$STATUS" = 0 ]; then result=no-response; else result=http-error; fi
  say "{\"id\":\"$1\",\"verb\":\"$2\",\"result\":\"$result\",\"step\":\"$3\",\"status\":$STATUS,\"curl\":$CURL,\"error\":\"$ERR\",\"body\":\"$BODY\"}"
}

# push_blob BASE REPO FILE: open an upload and finish it with the whole blob (monolithic PUT)
push_blob() {
  request POST "$1/v2/$2/blobs/uploads/" --data-binary ""
  [ "$STATUS" = 202 ] || return 1
  location=$(header Location)
  case $location in http://*|https://*) ;; *) location="$1$location";; esac
  case $location in *\?*) sep='&';; *) sep='?';; esac
  request PUT "$location${sep}digest=$(digest "$3")" -H "Content-Type: application/octet-stream" \
    --data-binary "@$3"
  [ "$STATUS" = 201 ]
}

image() {
  arch=${PROBE_ARCH:-$(uname -m)}
  case $arch in x86_64) arch=amd64;; aarch64) arch=arm64;; armv7l) arch=arm;; esac
  head -c 1024 /dev/zero > "$TMP/layer"  # an empty tar archive: two zero blocks
  printf '{"architecture":"%s","os":"%s","config":{"Labels":{"dev.meshreg.verify":"%s"}},"rootfs":{"type":"layers","diff_ids":["%s"]}}' \
    "$arch" "${PROBE_OS:-linux}" "${PROBE_RUN:-probe}" "$(digest "$TMP/layer")" > "$TMP/config"
  printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%s}]}' \
    "$OCI_MANIFEST" "$(digest "$TMP/config")" "$(size "$TMP/config")" "$(digest "$TMP/layer")" \
    "$(size "$TMP/layer")" > "$TMP/manifest"
}

push() {  # ID BASE REPO
  image
  push_blob "$2" "$3" "$TMP/layer" || { stopped "$1" push layer; return; }
  push_blob "$2" "$3" "$TMP/config" || { stopped "$1" push config; return; }
  request PUT "$2/v2/$3/manifests/$TAG" -H "Content-Type: $OCI_MANIFEST" --data-binary "@$TMP/manifest"
  [ "$STATUS" = 201 ] || { stopped "$1" push manifest; return; }
  request GET "$2/v2/$3/manifests/$TAG" -H "Accept: $ACCEPT"
  [ "$STATUS" = 200 ] || { stopped "$1" push read-back; return; }
  say "{\"id\":\"$1\",\"verb\":\"push\",\"result\":\"ok\",\"status\":200,\"digest\":\"$(digest "$TMP/manifest")\",\"served\":\"$(header Docker-Content-Digest)\"}"
}

simple() {  # ID VERB METHOD URL EXPECTED-STATUS [curl args]
  id=$1; verb=$2; method=$3; url=$4; want=$5; shift 5
  request "$method" "$url" "$@"
  [ "$STATUS" = "$want" ] || { stopped "$id" "$verb" "$verb"; return; }
  say "{\"id\":\"$id\",\"verb\":\"$verb\",\"result\":\"ok\",\"status\":$STATUS,\"served\":\"$(header Docker-Content-Digest)\"}"
}

wait_sidecar() {
  i=0
  while [ $i -lt 60 ]; do
    code=$(curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$ADMIN/healthz/ready" 2>/dev/null)
    [ "$code" = 200 ] && { say '{"event":"sidecar","ready":true}'; return; }
    i=$((i + 1)); sleep 1
  done
  say '{"event":"sidecar","ready":false}'
}

[ "${PROBE_SIDECAR:-none}" = wait ] && wait_sidecar
say '{"event":"start"}'
printf '%s\n' "${PROBE_STEPS:-}" | while read -r id verb base repo ref; do
  [ -n "$id" ] || continue
  case $verb in
    push) push "$id" "$base" "$repo";;
    pull) simple "$id" pull GET "$base/v2/$repo/manifests/$ref" 200 -H "Accept: $ACCEPT";;
    ping) simple "$id" ping GET "$base/v2/" 200;;
    delete) simple "$id" delete DELETE "$base/v2/$repo/manifests/$ref" 202;;
    *) say "{\"id\":\"$id\",\"verb\":\"$verb\",\"result\":\"unknown-verb\"}";;
  esac
done
say '{"event":"end"}'
# A Job's pod ends only when every container has: ask a classic (non-native) Istio sidecar to quit.
if [ "${PROBE_SIDECAR:-none}" = wait ]; then
  curl -s -X POST --max-time 5 "$QUIT" > /dev/null 2>&1 || true
fi
exit 0
