#!/usr/bin/env bash
# The baseline for Route53: what user-data does today with the AWS CLI.
#
#   route53.sh join|leave
#
# One change batch per action: UPSERT (join) or DELETE (leave) of the host's A
# record and of the service's SRV rrset holding this host's line (and, with
# RR_NAME set, of that round-robin name holding this host's address), then the
# CLI's waiter until Route53 reports the change INSYNC (what `dnsreg join`
# waits for too). The zone id is given, not looked up.
#
# No safety for shared rrsets: an UPSERT replaces the whole rrset, so every
# other machine's line in the SRV rrset (and its address in RR_NAME) is lost,
# and a DELETE that names one line of a shared rrset is refused.
#
# Environment: ZONE, ZONE_ID, INSTANCE_ID, IPV4, PORT (8080), RR_NAME (optional),
# AWS_ENDPOINT_URL_ROUTE_53 and the usual AWS credential variables.
set -euo pipefail
action=${1:?usage: route53.sh join|leave}
case $action in
    join) verb=UPSERT ;;
    leave) verb=DELETE ;;
    *) echo "route53.sh: unknown action $action" >&2; exit 2 ;;
esac
host="$INSTANCE_ID.$ZONE."
srv="_v1._theservice._tcp.$ZONE."
rrset() { # NAME TYPE VALUE
    printf '{"Action":"%s","ResourceRecordSet":{"Name":"%s","Type":"%s","TTL":60,"ResourceRecords":[{"Value":"%s"}]}}' \
        "$verb" "$1" "$2" "$3"
}
changes="$(rrset "$host" A "$IPV4"),$(rrset "$srv" SRV "0 0 ${PORT:-8080} $host")"
if [ -n "${RR_NAME:-}" ]; then
    changes="$changes,$(rrset "$RR_NAME.$ZONE." A "$IPV4")"
fi
id=$(aws route53 change-resource-record-sets --endpoint-url "$AWS_ENDPOINT_URL_ROUTE_53" \
    --hosted-zone-id "$ZONE_ID" --change-batch "{\"Changes\":[$changes]}" \
    --query ChangeInfo.Id --output text)
aws route53 wait resource-record-sets-changed --endpoint-url "$AWS_ENDPOINT_URL_ROUTE_53" --id "$id"
