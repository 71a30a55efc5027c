#!/usr/bin/env bash
# The baseline for Cloudflare: what user-data does today with curl and jq.
#
#   cloudflare.sh join|leave
#
# join: look the zone id up, then POST the host's A record and its SRV line.
# leave: look the zone id up, find each record's id, DELETE it. The usual
# single-record calls (one request per record, not atomic); the token goes in a
# header file (curl -H @file), never in argv.
#
# Environment: ZONE, INSTANCE_ID, IPV4, PORT (8080), CF_API (the API base URL),
# CLOUDFLARE_API_TOKEN.
set -euo pipefail
action=${1:?usage: cloudflare.sh join|leave}
port=${PORT:-8080}
host="$INSTANCE_ID.$ZONE"
srv="_v1._theservice._tcp.$ZONE"
headers=$(mktemp)
trap 'rm -f "$headers"' EXIT
printf 'Authorization: Bearer %s\nContent-Type: application/json\n' "$CLOUDFLARE_API_TOKEN" >"$headers"
cf() { curl -fsS -H @"$headers" "$@"; }

zone_id=$(cf "$CF_API/zones?name=$ZONE" | jq -r '.result[0].id')
records="$CF_API/zones/$zone_id/dns_records"
case $action in
    join)
        cf -X POST "$records" -o /dev/null \
            --data "{\"type\":\"A\",\"name\":\"$host\",\"content\":\"$IPV4\",\"ttl\":60}"
        cf -X POST "$records" -o /dev/null \
            --data "{\"type\":\"SRV\",\"name\":\"$srv\",\"ttl\":60,\"data\":{\"priority\":0,\"weight\":0,\"port\":$port,\"target\":\"$host\"}}"
        ;;
    leave)
        for id in $(cf "$records?type=A&name=$host&content=$IPV4" | jq -r '.result[].id'); do
            cf -X DELETE "$records/$id" -o /dev/null
        done
        for id in $(cf "$records?type=SRV&name=$srv" |
            jq -r --arg t "$host" --argjson p "$port" '.result[] | select(.data.target == $t and .data.port == $p) | .id'); do
            cf -X DELETE "$records/$id" -o /dev/null
        done
        ;;
    *) echo "cloudflare.sh: unknown action $action" >&2; exit 2 ;;
esac
