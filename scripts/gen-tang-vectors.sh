#!/usr/bin/env bash
# Regenerates crates/format/tests/vectors/tang/ with the real latchset
# tools (Debian 12: tang 11, clevis 19, jose 11):
#   apt-get install -y tang clevis jose jq
# One JSON file per case, each saying what it is and how it was made.
# Everything is offline: tangd answers requests fed on stdin, and clevis
# reads the advertisement from a file instead of fetching it.
set -euo pipefail

out="$(cd "$(dirname "$0")/.." && pwd)/crates/format/tests/vectors/tang"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
rm -f "$out"/*.json
tangd=/usr/libexec/tangd
gen="$(date -u +%Y-%m-%d) by scripts/gen-tang-vectors.sh ($(dpkg-query -W -f='tang ${Version}' tang 2>/dev/null || echo tang), $(dpkg-query -W -f='clevis ${Version}' clevis 2>/dev/null || echo clevis), $(dpkg-query -W -f='jose ${Version}' jose 2>/dev/null || echo jose))"

# $1 = request line + headers, $2 = body (may be empty). Prints the body of
# tangd's answer; the status goes to $work/status.
tangd_req() {
    local reply
    reply="$(printf '%s\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s' "$1" "${#2}" "$2" | "$tangd" "$work/db" 2>/dev/null)"
    sed -n '1s/^HTTP\/1.1 \([0-9]*\).*/\1/p' <<< "$reply" > "$work/status"
    printf '%s' "${reply#*$'\r\n\r\n'}"
}

# Thumbprints of fresh keys, every hash tangd accepts.
for alg in ECMR ES512; do
    jwk="$(jose jwk gen -i "{\"alg\":\"$alg\"}")"
    thps="{}"
    for h in S1 S224 S256 S384 S512; do
        thps="$(jq -c --arg h "$h" --arg t "$(jose jwk thp -i- -a "$h" <<< "$jwk")" '.[$h] = $t' <<< "$thps")"
    done
    jq -n --arg d "RFC 7638 thumbprints of a $alg key from 'jose jwk gen', by 'jose jwk thp -a S1..S512'" \
        --arg g "$gen" --argjson jwk "$(jose jwk pub -i- <<< "$jwk")" --argjson t "$thps" \
        '{kind: "thumbprint", description: $d, generated: $g, jwk: $jwk, thumbprints: $t}' \
        > "$out/thumbprint-$(tr A-Z a-z <<< "$alg").json"
done

# A key directory made by tangd-keygen, its advertisement, a /rec answer.
mkdir "$work/db"
/usr/libexec/tangd-keygen "$work/db"
sig="" exc=""
for f in "$work"/db/*.jwk; do
    if jose fmt -j- -g alg -u- < "$f" | grep -qx ES512; then sig="$f"; else exc="$f"; fi
done
keys="$(cat "$sig" "$exc" | jq -cs .)"
adv="$(tangd_req 'GET /adv HTTP/1.1' '')"
jq -n --arg d "GET /adv from tangd over a tangd-keygen key directory (flattened JWS, one ES512 signature)" \
    --arg g "$gen" --arg adv "$adv" --argjson keys "$keys" \
    '{kind: "advertisement", description: $d, generated: $g, adv: $adv, private_keys: $keys}' \
    > "$out/adv-tangd-flattened.json"

kid="$(jose jwk thp -i "$exc" -a S256)"
eph="$(jose jwk gen -i '{"alg":"ECMR"}')"
body="$(jose jwk pub -i- <<< "$eph")"
reply="$(tangd_req "POST /rec/$kid HTTP/1.1" "$body")"
jq -n --arg d "POST /rec/{kid} to tangd: request body and tangd's exact reply body" \
    --arg g "$gen" --arg kid "$kid" --arg req "$body" --arg rep "$reply" \
    --argjson status "$(cat "$work/status")" --argjson keys "$keys" \
    '{kind: "rec", description: $d, generated: $g, kid: $kid, request: $req, reply: $rep, status: $status, private_keys: $keys}' \
    > "$out/rec-tangd.json"

# Rotation: the old signing key's thumbprint gives a general JWS, 2 signatures.
old_sig_thp="$(jose jwk thp -i "$sig" -a S256)"
/usr/libexec/tangd-rotate-keys -d "$work/db" > /dev/null
adv2="$(tangd_req "GET /adv/$old_sig_thp HTTP/1.1" '')"
all="$(cat "$work"/db/*.jwk "$work"/db/.*.jwk | jq -cs .)"
jq -n --arg d "GET /adv/{old signing thp} from tangd after tangd-rotate-keys (general JWS, 2 signatures)" \
    --arg g "$gen" --arg adv "$adv2" --argjson keys "$all" \
    '{kind: "advertisement", description: $d, generated: $g, adv: $adv, private_keys: $keys}' \
    > "$out/adv-tangd-general.json"

# A clevis tang pin JWE, made offline from the first advertisement.
printf '%s' "$adv" > "$work/adv.jws"
plain="Secure Store vector: clevis tang pin"
jwe="$(printf '%s' "$plain" | clevis encrypt tang "{\"url\":\"http://tang.invalid:8080\",\"adv\":\"$work/adv.jws\"}")"
jq -n --arg d "clevis encrypt tang with the advertisement of adv-tangd-flattened.json; the exchange key decrypts it" \
    --arg g "$gen" --arg jwe "$jwe" --arg p "$plain" --argjson keys "$keys" \
    '{kind: "clevis-jwe", description: $d, generated: $g, jwe: $jwe, plaintext: $p, private_keys: $keys}' \
    > "$out/jwe-clevis-tang.json"

ls -l "$out"
