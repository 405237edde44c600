#!/usr/bin/env python3
"""Independent checker for a job receipt served by the coordinator.

Usage: receipt_check.py RECEIPT_JSON_FILE VKEY [VKEY ...]
Written only from the public specs (RFC 6962/9162 Merkle trees, C2SP
tlog-checkpoint and signed-note); it shares no code with the Rust project.
Prints `ok: ...` and exits 0, or prints `disproven: <reason>` and exits 1.
"""
import argparse, base64, hashlib, json, sys
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

sha256 = lambda b: hashlib.sha256(b).digest()
b64 = lambda s: base64.b64decode(s, validate=True)

def fail(reason):
    print(f"disproven: {reason}")
    sys.exit(1)

def ed25519_ok(pub, sig, msg):
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
        return True
    except (InvalidSignature, ValueError):
        return False

def inclusion_root(leaf, index, size, path):
    """RFC 9162 §2.1.3.2: root implied by an inclusion path, or None."""
    if index >= size:
        return None
    fn, sn, r = index, size - 1, sha256(b"\x00" + leaf)
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = sha256(b"\x01" + p + r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = sha256(b"\x01" + r + p)
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None

def check(body, vkeys):
    rc, sig, host_key = body["receipt"], b64(body["signature"]), b64(body["hostKey"])
    # 1. The host id names the host key.
    if len(host_key) != 32 or rc["hostId"] != hashlib.sha256(host_key).hexdigest():
        fail("hostId is not the SHA-256 of hostKey")
    # 2. The host signed the receipt message rebuilt from its fields.
    exit_code = "none" if rc["exitCode"] is None else rc["exitCode"]
    msg = (f"skyclaw receipt v1\ncluster {rc['clusterId']}\njob {rc['jobId']}\n"
           f"epoch {rc['leaseEpoch']}\npayload {rc['payloadHash']}\nexit {exit_code}\n"
           f"started {rc['startedAt']}\nfinished {rc['finishedAt']}\n"
           f"stdout {rc['stdout']['hash']} {rc['stdout']['size']}\n"
           f"stderr {rc['stderr']['hash']} {rc['stderr']['size']}\nhost {rc['hostId']}\n")
    if len(sig) != 64 or not ed25519_ok(host_key, sig, msg.encode()):
        fail("receipt signature does not verify under hostKey")
    # 3. The logged record carries that signature.
    record = b64(body["record"])
    if sig not in record:
        fail("record does not contain the receipt signature")
    # 4. Parse the signed note: text, blank line, `— name base64` lines.
    note = body["checkpoint"]
    cut = note.rfind("\n\n")
    if cut < 0:
        fail("checkpoint is not a signed note")
    text, sig_lines = note[:cut + 1], note[cut + 2:].split("\n")
    lines = text.split("\n")
    if len(lines) < 4 or lines[0] != f"skyclaw/{rc['clusterId']}":
        fail(f"checkpoint origin is not skyclaw/{rc['clusterId']}")
    if not (lines[1].isascii() and lines[1].isdigit()) or len(b64(lines[2])) != 32:
        fail("checkpoint tree size or root hash is malformed")
    size, root = int(lines[1]), b64(lines[2])
    # 5. A majority of the trusted vkeys signed the checkpoint text.
    trusted = {}
    for vk in vkeys:
        parts = vk.split("+", 2)  # the base64 key may itself contain "+"
        key = b64(parts[-1])
        if len(parts) != 3 or len(parts[1]) != 8 or len(key) != 33 or key[0] != 1:
            fail(f"malformed vkey {vk}")
        name, key_id = parts[0], bytes.fromhex(parts[1])
        if key_id != sha256(name.encode() + b"\n" + key)[:4]:
            fail(f"vkey {vk}: key id does not match its name and key")
        trusted[(name, key_id)] = key[1:]
    verified = set()
    for line in filter(None, sig_lines):
        if not line.startswith("\u2014 ") or len(line.split(" ")) != 3:
            fail(f"malformed note signature line {line!r}")
        name, blob = line.split(" ")[1], b64(line.split(" ")[2])
        who = (name, blob[:4])
        if who in trusted:  # lines by keys we do not trust are ignored
            if len(blob) != 68 or not ed25519_ok(trusted[who], blob[4:], text.encode()):
                fail(f"checkpoint signature by {name} does not verify")
            verified.add(who)
    if len(verified) < len(trusted) // 2 + 1:
        fail(f"checkpoint signed by only {len(verified)} of {len(trusted)} trusted keys")
    # 6. The record is leaf seq-1 of the checkpointed tree (RFC 6962 hashing).
    seq, path = body["seq"], [b64(h) for h in body["inclusion"]]
    if not 1 <= seq <= size:
        fail(f"seq {seq} is not a leaf of a tree of {size}")
    if inclusion_root(record, seq - 1, size, path) != root:
        fail("inclusion proof does not lead to the checkpoint root")
    print(f"ok: job {rc['jobId']} ran on host {rc['hostId']}, record {seq} is in the tree "
          f"of {size} records signed by {len(verified)} of {len(trusted)} keys")

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("receipt_json")
    ap.add_argument("vkeys", nargs="+")
    args = ap.parse_args()
    try:
        with open(args.receipt_json, encoding="utf-8") as f:
            check(json.load(f), args.vkeys)
    except (OSError, KeyError, TypeError, ValueError, IndexError) as e:  # bad file/JSON/base64
        fail(f"malformed input ({type(e).__name__}: {e})")
