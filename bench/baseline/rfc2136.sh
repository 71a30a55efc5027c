#!/usr/bin/env bash
# The baseline for RFC 2136 (BIND): what user-data does today with nsupdate.
#
#   rfc2136.sh join|leave
#
# One UPDATE signed with the TSIG key: add (join) or delete (leave) the host's
# A record and its line in the SRV rrset. nsupdate waits for the server's
# answer, which comes once the change is in the zone.
#
# Environment: ZONE, INSTANCE_ID, IPV4, PORT (8080), SERVER_IP, SERVER_PORT,
# TSIG_KEY_FILE.
set -euo pipefail
action=${1:?usage: rfc2136.sh join|leave}
host="$INSTANCE_ID.$ZONE."
srv="_v1._theservice._tcp.$ZONE."
case $action in
    join) verb="add"; ttl=60 ;;
    leave) verb="delete"; ttl="" ;;
    *) echo "rfc2136.sh: unknown action $action" >&2; exit 2 ;;
esac
nsupdate -k "$TSIG_KEY_FILE" <<END
server $SERVER_IP $SERVER_PORT
zone $ZONE
update $verb $host $ttl A $IPV4
update $verb $srv $ttl SRV 0 0 ${PORT:-8080} $host
send
END
