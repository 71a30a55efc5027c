#!/bin/sh
# dnsreg on any cloud (AWS, GCP, Azure, DigitalOcean, Hetzner, OpenStack, OCI,
# Alibaba: the metadata tells which), as a plain user-data script (cloud-init
# runs it once, as root, late in the first boot): this machine's public address
# joins the round-robin name www.example.com in Cloudflare while it runs, and
# leaves at shutdown or on a preemption/spot notice.
#
# Before use: set the values below. The token: a Cloudflare API token (not the
# global key) with Zone:Read and DNS:Edit on this zone only. User-data can be
# read back from the instance's metadata service: where that matters, fetch the
# token from your secret store here instead. On Azure and OCI the metadata
# shows no public address: use address = "private" or set ipv4.
# The same as #cloud-config: userdata/cloudflare-round-robin.yaml.
set -eu

# --- edit: the release tarball and its SHA-256 (from SHA256SUMS) ---
DNSREG_URL=https://releases.example.com/dnsreg/0.1.0/dnsreg-0.1.0-x86_64-unknown-linux-musl.tar.gz
DNSREG_SHA256=REPLACE-WITH-THE-SHA256-OF-THE-TARBALL
# --- edit: the token, the zone and the shared name ---
CLOUDFLARE_API_TOKEN=REPLACE-WITH-YOUR-CLOUDFLARE-API-TOKEN
ZONE=example.com
NAME=www
# --- optional, blank = the cloud's own and api.cloudflare.com: the instance
# metadata service and the Cloudflare API base URL to use instead (a proxy;
# scripts/boot-test fills these in with its stand-ins) ---
METADATA_ENDPOINT=
CLOUDFLARE_ENDPOINT=
metadata_endpoint=""
[ -z "$METADATA_ENDPOINT" ] || metadata_endpoint="metadata_endpoint = \"$METADATA_ENDPOINT\""
cloudflare_endpoint=""
[ -z "$CLOUDFLARE_ENDPOINT" ] || cloudflare_endpoint="endpoint = \"$CLOUDFLARE_ENDPOINT\""

case "$CLOUDFLARE_API_TOKEN" in
    REPLACE-*) echo "user-data: set CLOUDFLARE_API_TOKEN first" >&2; exit 1 ;;
esac
# The token: created mode 600, root's until the dnsreg user exists.
install -d -m 0755 /etc/dnsreg
(umask 077 && printf '%s\n' "$CLOUDFLARE_API_TOKEN" > /etc/dnsreg/cloudflare.token)

# The configuration (no secret in it).
cat > /etc/dnsreg/dnsreg.toml.new <<EOF
[instance]
metadata = "auto"             # whichever cloud this is
address = "public"
$metadata_endpoint

[providers.cf]
type = "cloudflare"
zone = "$ZONE"
token_file = "/etc/dnsreg/cloudflare.token"
$cloudflare_endpoint

[[round_robin]]               # $NAME.$ZONE A: every machine's address
providers = ["cf"]
name = "$NAME"
ttl = 60

# [[check]]                   # publish only while the service answers
# http = "http://127.0.0.1:80/"

[agent]
stop_timeout = "20s"          # below TimeoutStopSec (45s) in dnsreg.service
EOF
chmod 0644 /etc/dnsreg/dnsreg.toml.new
mv /etc/dnsreg/dnsreg.toml.new /etc/dnsreg/dnsreg.toml

# Download, verify, unpack, install (binary, unit, system user).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -fsSL --retry 5 --retry-connrefused -o "$work/dnsreg.tar.gz" "$DNSREG_URL"
echo "$DNSREG_SHA256  $work/dnsreg.tar.gz" | sha256sum -c --strict -
tar -xzf "$work/dnsreg.tar.gz" -C "$work" --strip-components=1
"$work/install"
# The token is for the agent alone: owner dnsreg, mode 600.
chown dnsreg:dnsreg /etc/dnsreg/cloudflare.token

# Refuse a bad configuration before starting anything (exit 2).
dnsreg check
# Starts once joined (Type=notify): the script ends with the records in place.
systemctl enable --now dnsreg.service
