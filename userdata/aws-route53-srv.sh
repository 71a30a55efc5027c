#!/bin/sh
# dnsreg on AWS, as a plain user-data script (cloud-init runs it once, as root,
# late in the first boot; so does any image that runs user-data scripts): this
# instance joins the service group _v1._theservice._tcp in the Route53 zone
# example.com while it runs, and leaves at shutdown, before a spot
# interruption, or on an Auto Scaling scale-in.
#
# Before use: set the five values below (two more are optional), and launch the instance with an
# instance profile whose role has iam/dnsreg-route53-policy.json (this
# configuration is the one it is written for: set your hosted zone id in it),
# with IMDSv2 required. The same as #cloud-config: userdata/aws-route53-srv.yaml.
set -eu

# --- edit: the release tarball and its SHA-256 (from SHA256SUMS) ---
DNSREG_URL=https://releases.example.com/dnsreg/0.1.0/dnsreg-0.1.0-x86_64-unknown-linux-musl.tar.gz
DNSREG_SHA256=REPLACE-WITH-THE-SHA256-OF-THE-TARBALL
# --- edit: the zone and the service ---
ZONE=example.com
SERVICE=_v1._theservice._tcp   # the SRV rrset every instance has a line in
DNSSD_TYPE=_theservice._tcp    # the DNS-SD service type browsed with PTR
PORT=8080
# --- optional, blank = the cloud's own: the instance metadata service and the
# Route53 API to use instead (a proxy; scripts/boot-test fills these in with its
# stand-ins) ---
METADATA_ENDPOINT=
ROUTE53_ENDPOINT=
metadata_endpoint=""
[ -z "$METADATA_ENDPOINT" ] || metadata_endpoint="metadata_endpoint = \"$METADATA_ENDPOINT\""
route53_endpoint=""
[ -z "$ROUTE53_ENDPOINT" ] || route53_endpoint="endpoint = \"$ROUTE53_ENDPOINT\""

# The configuration. Not a secret: AWS credentials come from the instance role.
install -d -m 0755 /etc/dnsreg
cat > /etc/dnsreg/dnsreg.toml.new <<EOF
[instance]
metadata = "aws"              # IMDSv2, at 169.254.169.254 (or METADATA_ENDPOINT)
address = "public"            # or "private": the address the group's clients reach
$metadata_endpoint

[providers.r53]
type = "route53"
zone = "$ZONE"
$route53_endpoint

[[host]]                      # i-0abc….hosts.$ZONE A <address>
providers = ["r53"]
name = "{instance_id}.hosts"
ttl = 60

[[srv]]                       # $SERVICE.$ZONE SRV 0 0 $PORT i-0abc….hosts.$ZONE.
providers = ["r53"]
name = "$SERVICE"
port = $PORT
target = "{instance_id}.hosts"
ttl = 60

[[service]]                   # DNS-SD (RFC 6763): $DNSSD_TYPE.$ZONE PTR i-0abc….$DNSSD_TYPE.$ZONE.,
providers = ["r53"]           # and that instance's own SRV and TXT
type = "$DNSSD_TYPE"
instance = "{instance_id}"
port = $PORT
target = "{instance_id}.hosts"
txt = { version = "1" }
ttl = 60

# [[check]]                   # publish only while the service answers
# http = "http://127.0.0.1:$PORT/healthz"

[agent]
stop_timeout = "20s"          # below TimeoutStopSec (45s) in dnsreg.service
EOF
chmod 0644 /etc/dnsreg/dnsreg.toml.new
mv /etc/dnsreg/dnsreg.toml.new /etc/dnsreg/dnsreg.toml

# Download, verify, unpack; install (binary, unit, system user), then with
# --enable: `dnsreg check` (a bad configuration stops here, exit 2, before
# anything starts) and `systemctl enable --now dnsreg`, which returns once
# dnsreg has joined (Type=notify): the script ends with the records in place.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -fsSL --retry 5 --retry-connrefused -o "$work/dnsreg.tar.gz" "$DNSREG_URL"
echo "$DNSREG_SHA256  $work/dnsreg.tar.gz" | sha256sum -c --strict -
tar -xzf "$work/dnsreg.tar.gz" -C "$work" --strip-components=1
"$work/install" --enable
