"""The Cloudflare stand-in through Cloudflare's own Python SDK, with strict
response validation: every answer must parse as the SDK's models of the real
API, and what the API refuses, the stand-in refuses as the SDK expects.

Usage: cloudflare_sdk.py BASE_URL TOKEN WRONG_TOKEN ZONE
Prints one line per step; exits non-zero at the first failure."""
import sys

import cloudflare
from cloudflare import Cloudflare

base_url, token, wrong_token, zone = sys.argv[1:5]
c = Cloudflare(api_token=token, base_url=base_url, _strict_response_validation=True, max_retries=0)

zones = list(c.zones.list(name=zone))
assert [z.name for z in zones] == [zone], zones
zid = zones[0].id
assert c.zones.get(zone_id=zid).name == zone
print("zones: list by name and get")

made = c.dns.records.create(zone_id=zid, type="A", name=f"www.{zone}", content="192.0.2.1", ttl=60, comment="a person's")
assert made.content == "192.0.2.1" and made.comment == "a person's", made
found = list(c.dns.records.list(zone_id=zid, name={"exact": f"www.{zone}"}, type="A"))
assert [r.id for r in found] == [made.id], found
print("records: create and list")

done = c.dns.records.batch(
    zone_id=zid,
    posts=[{"type": "A", "name": f"www.{zone}", "content": "192.0.2.2", "ttl": 60}],
    patches=[{"id": made.id, "comment": "patched"}],
)
assert len(done.posts) == 1 and len(done.patches) == 1, done
assert done.patches[0].comment == "patched"
print("records: batch")

c.dns.records.delete(dns_record_id=done.posts[0].id, zone_id=zid)
c.dns.records.delete(dns_record_id=made.id, zone_id=zid)
assert list(c.dns.records.list(zone_id=zid, name={"exact": f"www.{zone}"})) == []
print("records: delete")

# Refusals, as the SDK classifies the real API's.
try:
    c.dns.records.delete(dns_record_id=made.id, zone_id=zid)
    raise SystemExit("deleting a deleted record was accepted")
except cloudflare.NotFoundError:
    print("refused: a record that is gone (404)")
try:
    list(Cloudflare(api_token=wrong_token, base_url=base_url, _strict_response_validation=True, max_retries=0).zones.list(name=zone))
    raise SystemExit("a wrong token was accepted")
except (cloudflare.AuthenticationError, cloudflare.PermissionDeniedError) as e:
    print(f"refused: a wrong token ({e.status_code})")
