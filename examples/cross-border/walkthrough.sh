#!/usr/bin/env bash
# Cross-border case sharing between two fictional agencies on the same transit corridor, done the
# way an operator and a case-management system would: the `passerelle` command for setup, curl
# against each node's local API for everything else. See README.md in this folder.
#
#   bash examples/cross-border/walkthrough.sh [OUT_DIR]
set -euo pipefail
set -m # background jobs get their own process group, so the nodes can be stopped as a whole
cd "$(dirname "$0")/../.."

OUT="${1:-.demo/cross-border-$(date +%Y%m%dT%H%M%S)}"
BE_PORT="${BE_PORT:-47481}"
FR_PORT="${FR_PORT:-47482}"
BE="http://127.0.0.1:${BE_PORT}"
FR="http://127.0.0.1:${FR_PORT}"
NODE=node_modules/.bin/node

passerelle() { node_modules/.bin/tsx --conditions=@passerelle/source packages/cli/src/main.ts "$@"; }
# Reads one field of the JSON on stdin, e.g. `... | field .fingerprints[0]`.
field() { "$NODE" -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=Function("v","return v"+process.argv[1])(JSON.parse(s));process.stdout.write(typeof v==="string"?v:JSON.stringify(v))})' "$1"; }
api() { # api TOKEN METHOD URL [JSON]
  local token="$1" method="$2" url="$3"
  if [ $# -ge 4 ]; then curl -sS --fail-with-body -X "$method" -H "authorization: Bearer $token" -H 'content-type: application/json' --data "$4" "$url"
  else curl -sS --fail-with-body -X "$method" -H "authorization: Bearer $token" "$url"; fi
}
say() { printf '\n== %s\n' "$*"; }

PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

say "1. Each organisation creates its node (dev mode: loopback ids) in $OUT"
passerelle node init --dir "$OUT/be" --url "$BE" --name "Centre d'accueil Exemple (BE)" --country BE --role reception-agency --language fr --language nl --dev >/dev/null
passerelle node init --dir "$OUT/fr" --url "$FR" --name "Corridor Solidaire Exemple (FR)" --country FR --role ngo --language fr --dev >/dev/null
BE_FP=$(passerelle node info --dir "$OUT/be" --json | field .fingerprints[0])
FR_FP=$(passerelle node info --dir "$OUT/fr" --json | field .fingerprints[0])
echo "BE $BE fingerprint $BE_FP"
echo "FR $FR fingerprint $FR_FP"

say "2. Fingerprints are exchanged out of band and pinned; tokens are created"
passerelle peers add --dir "$OUT/be" --id "$FR" --fingerprint "$FR_FP" --no-fetch
passerelle peers add --dir "$OUT/fr" --id "$BE" --fingerprint "$BE_FP" --no-fetch
BE_ADMIN=$(passerelle tokens create --dir "$OUT/be" --role administrator --json | field .secret)
BE_CASE=$(passerelle tokens create --dir "$OUT/be" --role caseworker --json | field .secret)
FR_ADMIN=$(passerelle tokens create --dir "$OUT/fr" --role administrator --json | field .secret)
FR_CASE=$(passerelle tokens create --dir "$OUT/fr" --role caseworker --json | field .secret)

say "3. Both nodes start"
passerelle node start --dir "$OUT/be" --log-level warn >"$OUT/be.log" 2>&1 &
PIDS+=($!)
passerelle node start --dir "$OUT/fr" --log-level warn >"$OUT/fr.log" 2>&1 &
PIDS+=($!)
for url in "$BE" "$FR"; do
  for _ in $(seq 1 200); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.1; done
  curl -sf "$url/readyz" >/dev/null && echo "$url ready"
done

say "4. The administrators co-sign the cross-border agreement"
NOW=$("$NODE" -p 'new Date(Date.now()-86400e3).toISOString().replace(/\.\d+Z$/,"Z")')
UNTIL=$("$NODE" -p 'new Date(Date.now()+365*86400e3).toISOString().replace(/\.\d+Z$/,"Z")')
AGREEMENT=$(cat <<JSON
{"agreement":{
  "title":"Coopération transfrontalière — corridor de transit (Belgique–France)",
  "parties":[{"node":"$BE","role":"reception-agency","name":"Centre d'accueil Exemple (BE)"},
             {"node":"$FR","role":"ngo","name":"Corridor Solidaire Exemple (FR)"}],
  "purposes":["referral","case-coordination"],
  "flows":[{"from":"$BE","to":"$FR","messageTypes":["referral","consent-withdrawal","case-closure"],"categories":["identity","contact","legal-status"]},
           {"from":"$FR","to":"$BE","messageTypes":["referral-response","erasure-confirmation"],"categories":["contact"]}],
  "onwardReferral":{"allowed":false},
  "retention":[{"category":"identity","days":365},{"category":"contact","days":365},{"category":"legal-status","days":365}],
  "legalBasis":{"basis":"consent","reference":"Regulation (EU) 2016/679, art. 6(1)(a)"},
  "validFrom":"$NOW","validUntil":"$UNTIL"}}
JSON
)
SIGNED_BE=$(api "$BE_ADMIN" POST "$BE/api/v1/agreements/sign" "$AGREEMENT" | field .jws)
SIGNED_BOTH=$(api "$FR_ADMIN" POST "$FR/api/v1/agreements/sign" "{\"agreement\":$SIGNED_BE}" | field .jws)
AGREEMENT_ID=$(api "$BE_ADMIN" POST "$BE/api/v1/agreements" "{\"jws\":$SIGNED_BOTH}" | field .id)
api "$FR_ADMIN" POST "$FR/api/v1/agreements" "{\"jws\":$SIGNED_BOTH}" | field '.inForce' | sed 's/^/in force on FR: /'
echo
echo "agreement $AGREEMENT_ID"

say "5. A BE caseworker records the person's consent (oral, French text, intercultural mediator)"
TEXT_DIGEST=$(printf '%s' "Texte du consentement, version BE-2026-03" | "$NODE" -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(require("crypto").createHash("sha256").update(s).digest("base64url")))')
COLLECTED=$("$NODE" -p 'new Date().toISOString().replace(/\.\d+Z$/,"Z")')
EXPIRES=$("$NODE" -p 'new Date(Date.now()+180*86400e3).toISOString().replace(/\.\d+Z$/,"Z")')
CONSENT_ID=$(api "$BE_CASE" POST "$BE/api/v1/consents" "{
  \"subject\":\"case-be-2026-0201\",\"purposes\":[\"referral\",\"case-coordination\"],\"recipients\":[\"$FR\"],
  \"categories\":[\"identity\",\"contact\",\"legal-status\"],\"explicitConsent\":[],
  \"collection\":{\"method\":\"oral\",\"interpreter\":{\"kind\":\"intercultural-mediator\",\"language\":\"ar\"},\"language\":\"fr\",
                  \"text\":{\"version\":\"BE-2026-03\",\"digest\":\"$TEXT_DIGEST\"}},
  \"collectedAt\":\"$COLLECTED\",\"expiresAt\":\"$EXPIRES\",\"collectedBy\":{\"role\":\"caseworker\",\"staffRef\":\"cw-be-021\"}}" | field .id)
echo "consent $CONSENT_ID"

say "6. BE refers the case to FR; the outbox delivers it and keeps FR's signed receipt"
MESSAGE_ID=$(api "$BE_CASE" POST "$BE/api/v1/messages" "{
  \"type\":\"referral\",\"to\":\"$FR\",\"agreementId\":\"$AGREEMENT_ID\",\"consentId\":\"$CONSENT_ID\",\"purpose\":\"case-coordination\",
  \"body\":{\"subject\":\"case-be-2026-0201\",\"services\":[\"legal\",\"social\"],\"urgency\":\"routine\",\"reasonCode\":\"cross-border-coordination\"},
  \"data\":{\"identity\":{\"givenName\":\"Samir\",\"familyName\":\"Exemple\"},\"contact\":{\"preferredChannel\":\"through-caseworker\"},
           \"legal-status\":{\"status\":\"irregular-stay\"}}}" | field .id)
for _ in $(seq 1 100); do
  STATE=$(api "$BE_CASE" GET "$BE/api/v1/outbox/$MESSAGE_ID" | field .state)
  [ "$STATE" != queued ] && break; sleep 0.1
done
echo "referral $MESSAGE_ID: $STATE"
api "$BE_CASE" GET "$BE/api/v1/outbox/$MESSAGE_ID" | field .receipt | passerelle inspect -

say "7. FR's caseworker reads it (an audited read) and accepts"
INBOX_ID=$(api "$FR_CASE" GET "$FR/api/v1/inbox" | field .messages[0].id)
api "$FR_CASE" GET "$FR/api/v1/inbox/$INBOX_ID" | field .data | sed 's/^/disclosed to FR: /'
echo
THREAD=$(api "$FR_CASE" GET "$FR/api/v1/inbox/$INBOX_ID" | field .threadId)
api "$FR_CASE" POST "$FR/api/v1/messages" "{\"type\":\"referral-response\",\"to\":\"$BE\",\"agreementId\":\"$AGREEMENT_ID\",\"threadId\":\"$THREAD\",
  \"body\":{\"inReplyTo\":\"$MESSAGE_ID\",\"subject\":\"case-be-2026-0201\",\"decision\":\"accepted\"}}" | field .id | sed 's/^/referral-response /'
echo

say "8. The person withdraws consent: FR is told, erases, and confirms"
api "$BE_CASE" POST "$BE/api/v1/consents/$CONSENT_ID/withdraw" '{"erasureRequested":true}' | field .notified | sed 's/^/withdrawal sent to: /'
echo
for _ in $(seq 1 100); do
  CONFIRMATION=$(api "$BE_CASE" GET "$BE/api/v1/inbox?sender=$FR" | field '.messages.find(m=>m.type==="erasure-confirmation")?.id ?? ""')
  [ -n "$CONFIRMATION" ] && break; sleep 0.1
done
[ -n "$CONFIRMATION" ] || { echo "no erasure confirmation from FR" >&2; exit 1; }
api "$BE_CASE" GET "$BE/api/v1/inbox/$CONFIRMATION" | field .body | sed 's/^/erasure confirmation: /'
echo
api "$FR_CASE" GET "$FR/api/v1/inbox/$INBOX_ID" | field .erased | sed 's/^/referral erased at FR: /'
echo

say "Done. Node directories are in $OUT (pnpm passerelle node info --dir $OUT/be)"
