#!/usr/bin/env python3
"""Re-sign the sample webhook deliveries in webhooks/meta/ and webhooks/x/ (standard library only).

    python3 webhooks/sign.py            re-sign every sample, rewrite x/crc_vector.json
    python3 webhooks/sign.py --batch    first regenerate meta/feed_batch_100.json (deterministic)
    python3 webhooks/sign.py --check    verify only; exit 1 if a header or the CRC vector is stale

A sample is `<name>.json` (the exact body bytes, never reformatted by this script) beside
`<name>.headers.json`. Signatures are HMAC-SHA256 over the file's bytes with the folder's SECRET
(its first line, surrounding whitespace ignored): hex for Meta (`x-hub-signature-256`), base64 for X
(`x-twitter-webhooks-signature`). `x/crc_vector.json` is the CRC test vector, not a delivery.
"""

import base64
import hashlib
import hmac
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
CRC_TOKEN = "nikara-crc-test-token-0123456789"
PLATFORMS = {
    "meta": ("x-hub-signature-256", lambda mac: mac.hexdigest()),
    "x": ("x-twitter-webhooks-signature", lambda mac: base64.b64encode(mac.digest()).decode()),
}

PAGE = "112233445566778"
T0 = 1779268600  # 2026-05-20T09:16:40Z
REACTIONS = ["haha", "wow", "sad", "angry", "care"]


def secret(folder: Path) -> bytes:
    return folder.joinpath("SECRET").read_text().splitlines()[0].strip().encode()


def batch_body() -> bytes:
    """100 feed changes for one page in 4 entries of 25, the same bytes on every run.

    i % 10: 0 reaction add like, 1 reaction add love, 2 reaction add haha/wow/sad/angry/care,
    3 comment add, 4 reaction remove like, 5 comment edited (of i-2's comment), 6 share add,
    7 comment hide (of i-4's comment), 8 like add (i//10 even) or the page's own status (odd: skipped),
    9 comment block (i//10 % 3 == 0: unknown), unhide of i-6's comment (== 1), remove of it (== 2).
    Changes i % 25 == 24 carry no created_time (occurred_at falls back to entry.time).
    Expected: 91 facts (40 reaction, 36 comment, 10 share, 5 like), 4 unknown, 5 skipped, sum of deltas 35.
    """
    entries = []
    for e in range(4):
        changes = []
        for i in range(e * 25, e * 25 + 25):
            post = f"{PAGE}_900000000{1 + i % 5}"
            actor = {"id": f"248160000000{10000 + i * 7:05d}", "name": f"Tester {i:03d}"}
            created = T0 + i * 11
            comment = lambda j: f"900000000{1 + j % 5}_21000000000{j:05d}"
            r, d = i % 10, i // 10
            v = None
            if r in (0, 1, 2, 4):
                rt = {0: "like", 1: "love", 2: REACTIONS[d % 5], 4: "like"}[r]
                verb = "remove" if r == 4 else "add"
                v = {"from": actor, "post_id": post, "created_time": created, "item": "reaction", "parent_id": post,
                     "reaction_type": rt, "verb": verb}
            elif r == 3:
                v = {"from": actor, "message": f"Comment number {i}", "post_id": post, "comment_id": comment(i),
                     "created_time": created, "item": "comment", "parent_id": post, "verb": "add"}
            elif r == 5:
                v = {"from": actor, "message": f"Comment number {i - 2} (edited)", "post_id": f"{PAGE}_900000000{1 + (i - 2) % 5}",
                     "comment_id": comment(i - 2), "created_time": created, "item": "comment", "verb": "edited"}
            elif r == 6:
                v = {"item": "share", "verb": "add", "share_id": f"1000000000{i:07d}", "post_id": post,
                     "sender_id": actor["id"], "sender_name": actor["name"], "created_time": created, "published": 1,
                     "message": f"Share {i}", "link": "https://example.com/launch"}
            elif r == 7:
                v = {"from": actor, "post_id": f"{PAGE}_900000000{1 + (i - 4) % 5}", "comment_id": comment(i - 4),
                     "created_time": created, "item": "comment", "verb": "hide"}
            elif r == 8 and d % 2 == 0:
                v = {"from": actor, "post_id": post, "created_time": created, "item": "like", "parent_id": post, "verb": "add"}
            elif r == 8:
                v = {"from": {"id": PAGE, "name": "Nikara Demo"}, "post_id": f"{PAGE}_90000001{i:02d}", "created_time": created,
                     "item": "status", "message": f"Page update {i}", "published": 1, "verb": "add"}
            else:  # r == 9
                verb = ["block", "unhide", "remove"][d % 3]
                v = {"from": actor, "post_id": f"{PAGE}_900000000{1 + (i - 6) % 5}", "comment_id": comment(i - 6),
                     "created_time": created, "item": "comment", "verb": verb}
            if i % 25 == 24:
                del v["created_time"]
            changes.append({"value": v, "field": "feed"})
        entries.append({"id": PAGE, "time": T0 + e * 300 + 290, "changes": changes})
    return json.dumps({"entry": entries, "object": "page"}, separators=(",", ":")).encode()


def main() -> int:
    args = set(sys.argv[1:])
    check = "--check" in args
    if "--batch" in args and not check:
        ROOT.joinpath("meta", "feed_batch_100.json").write_bytes(batch_body())
    stale = []
    for platform, (header, encode) in PLATFORMS.items():
        folder = ROOT / platform
        key = secret(folder)
        for body_path in sorted(folder.glob("*.json")):
            if body_path.name.endswith(".headers.json") or body_path.name == "crc_vector.json":
                continue
            mac = hmac.new(key, body_path.read_bytes(), hashlib.sha256)
            headers = {"content-type": "application/json", header: "sha256=" + encode(mac)}
            text = json.dumps(headers, indent=2) + "\n"
            headers_path = body_path.with_name(body_path.stem + ".headers.json")
            if not headers_path.exists() or headers_path.read_text() != text:
                stale.append(headers_path)
                if not check:
                    headers_path.write_text(text)
        if platform == "x":
            mac = hmac.new(key, CRC_TOKEN.encode(), hashlib.sha256)
            vector = {"crc_token": CRC_TOKEN, "response_token": "sha256=" + base64.b64encode(mac.digest()).decode()}
            text = json.dumps(vector, indent=2) + "\n"
            crc_path = folder / "crc_vector.json"
            if not crc_path.exists() or crc_path.read_text() != text:
                stale.append(crc_path)
                if not check:
                    crc_path.write_text(text)
    for path in stale:
        print(("stale: " if check else "wrote: ") + str(path.relative_to(ROOT)))
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
