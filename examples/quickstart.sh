#!/usr/bin/env bash
# The whole flow against a freshly started gateway on a temporary data dir.
# Exits non-zero as soon as any step does not behave as it should.
# Usage: examples/quickstart.sh   (needs gatewayctl on PATH, or GATEWAYCTL=/path/to/gatewayctl)
set -euo pipefail

CTL=${GATEWAYCTL:-gatewayctl}
DATA=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
export GATEWAY_DATA_DIR="$DATA" GATEWAY_SERVER_PORT="$PORT" GATEWAY_ACTOR="quickstart"
SERVER_PID=""

cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  rm -rf "$DATA"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
expect_status() {  # expect_status WANT GOT WHAT
  [ "$1" = "$2" ] || fail "$3: expected HTTP $1, got $2"
  echo "ok: $3 -> HTTP $2"
}

step "initialise the embedded default in $DATA"
"$CTL" init

step "start the gateway on $BASE"
"$CTL" serve >"$DATA/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 50); do curl -fs "$BASE/readyz" >/dev/null && break; sleep 0.2; done
curl -fs "$BASE/readyz" >/dev/null || { cat "$DATA/serve.log"; fail "gateway did not start"; }

step "create a service principal (the web backend) and its signing key"
"$CTL" principals add web --kind service --perm sign --perm sign:on-behalf --perm media:write
WEB_KID=$("$CTL" keys create --principal web --json | json '["kid"]')
echo "web signs with $WEB_KID"
WEB_TOKEN=$("$CTL" token --credential "$DATA/keys/credentials/web.json")

step "register a media item through the API"
status=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$BASE/v1/media/intro" \
  -H "Authorization: Bearer $WEB_TOKEN" -H 'Content-Type: application/json' \
  -d '{"owner":"alice","workspace":"acme","visibility":"workspace",
       "renditions":{"video":"/v/intro/master.m3u8","thumbnail":"/t/intro.jpg"}}')
expect_status 200 "$status" "PUT /v1/media/intro"

step "a permitted viewer opens the stable page URL and is redirected to a fresh signed URL"
VIEWER=$("$CTL" token --viewer bob --workspace acme)
headers=$(curl -s -D - -o /dev/null "$BASE/m/intro/video" -H "Authorization: Bearer $VIEWER")
status=$(printf '%s' "$headers" | head -1 | awk '{print $2}')
expect_status 302 "$status" "GET /m/intro/video as bob (workspace member)"
LOCATION=$(printf '%s' "$headers" | tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')
echo "redirect: $LOCATION"
OUTSIDER=$("$CTL" token --viewer mallory)
status=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/m/intro/video" -H "Authorization: Bearer $OUTSIDER")
expect_status 404 "$status" "GET /m/intro/video as mallory (not a member)"

step "the reverse proxy verifies the signed URL"
URI=${LOCATION#https://cdn.example.com}
status=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/v1/verify" -H "X-Original-URI: $URI")
expect_status 200 "$status" "verify the redirect's URL"
status=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/v1/verify" -H "X-Original-URI: ${URI/gw_exp=/gw_exp=9}")
expect_status 403 "$status" "verify a tampered URL"

step "the backend signs a URL for a viewer"
SIGNED=$(curl -fs -X POST "$BASE/v1/sign" -H "Authorization: Bearer $WEB_TOKEN" -H 'Content-Type: application/json' \
  -d "{\"media_id\":\"intro\",\"rendition\":\"video\",\"viewer_token\":\"$VIEWER\",\"ttl\":120}")
SIGNED_URI=$(printf '%s' "$SIGNED" | json '["url"]' | sed 's#^https://cdn.example.com##')
status=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/v1/verify" -H "X-Original-URI: $SIGNED_URI")
expect_status 200 "$status" "verify the backend's URL"

step "a thumbnail-only robot is refused a video URL"
"$CTL" principals add thumbnailer --perm sign --perm sign:on-behalf --rendition thumbnail
"$CTL" keys create --principal thumbnailer
THUMB_TOKEN=$("$CTL" token --credential "$DATA/keys/credentials/thumbnailer.json")
for rendition in thumbnail video; do
  status=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$BASE/v1/sign" \
    -H "Authorization: Bearer $THUMB_TOKEN" -H 'Content-Type: application/json' \
    -d "{\"media_id\":\"intro\",\"rendition\":\"$rendition\",\"viewer\":{\"id\":\"alice\"}}")
  want=200; [ "$rendition" = video ] && want=403
  expect_status "$want" "$status" "thumbnailer asks for a $rendition URL"
done

step "revoke the backend's key: verify denies at once, no restart"
"$CTL" keys revoke "$WEB_KID" --reason "quickstart: laptop stolen"
status=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/v1/verify" -H "X-Original-URI: $SIGNED_URI")
expect_status 403 "$status" "verify the revoked key's URL"
status=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/v1/verify" -H "X-Original-URI: $URI")
expect_status 200 "$status" "the pages key's URL is unaffected"

step "why is the backend's URL refused? gatewayctl explain says, from the audit log"
explained=$("$CTL" explain "$SIGNED_URI") && fail "explain called the revoked key's URL valid"
printf '%s\n' "$explained"
printf '%s' "$explained" | grep -q "was revoked at .* by quickstart: quickstart: laptop stolen" \
  || fail "explain did not name who revoked the key and why"
"$CTL" explain "$URI" >/dev/null || fail "explain refused the pages key's URL"

step "the audit log"
"$CTL" audit tail -n 30
count=$("$CTL" audit search --event url:issued --json | json '.__len__()')
[ "$count" -ge 3 ] || fail "expected at least 3 url:issued records, found $count"
"$CTL" audit search --event key:revoked --json | json '[0]["kid"]' | grep -qx "$WEB_KID" \
  || fail "key:revoked record missing"
echo
echo "quickstart: all steps behaved as expected"
