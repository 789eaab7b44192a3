#!/usr/bin/python3
"""Verify hallrate press records from the rule in docs/contract.md alone.

Written from the contract's text, not from the Go code, as an outside
consumer would: version 2 records are signed over "hallrate-record-v2", a
line feed and the record as canonical JSON without "sig"; version 1 records
(no "sigv") over the version 1 canonical string. Each record's "prev" is the
hex SHA-256 of the previous record's signed message.

    verify_records.py --pubkey BASE64 [FILE]   records, one JSON object a line
    verify_records.py --doc docs/contract.md   the contract's worked example

Exit status 0 when everything verifies, 1 otherwise; one line per finding.
"""

import argparse
import base64
import hashlib
import json
import re
import sys

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey, Ed25519PublicKey)

    def verify(pub, sig, msg):
        try:
            Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
            return True
        except InvalidSignature:
            return False

    def public_of_seed(seed):
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
        return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw)
except ImportError:  # python3-nacl instead
    import nacl.exceptions
    import nacl.signing

    def verify(pub, sig, msg):
        try:
            nacl.signing.VerifyKey(pub).verify(msg, sig)
            return True
        except nacl.exceptions.BadSignatureError:
            return False

    def public_of_seed(seed):
        return bytes(nacl.signing.SigningKey(seed).verify_key)

MAX_INT = 2**53 - 1


class NotCanonical(Exception):
    pass


def no_duplicates(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise NotCanonical("member %r twice" % k)
        obj[k] = v
    return obj


def canon_string(s):
    out = ['"']
    for ch in s:
        c = ord(ch)
        if 0xD800 <= c <= 0xDFFF:
            raise NotCanonical("unpaired surrogate")
        if ch == '"':
            out.append('\\"')
        elif ch == '\\':
            out.append('\\\\')
        elif ch in '\b\t\n\f\r':
            out.append({'\b': '\\b', '\t': '\\t', '\n': '\\n', '\f': '\\f', '\r': '\\r'}[ch])
        elif c < 0x20:
            out.append('\\u%04x' % c)
        else:
            out.append(ch)
    out.append('"')
    return ''.join(out)


def canon(v):
    if v is None:
        return 'null'
    if v is True:
        return 'true'
    if v is False:
        return 'false'
    if isinstance(v, float):
        if not v.is_integer():
            raise NotCanonical("number %r is not an integer" % v)
        v = int(v)
    if isinstance(v, int):
        if abs(v) > MAX_INT:
            raise NotCanonical("number %d out of range" % v)
        return str(v)
    if isinstance(v, str):
        return canon_string(v)
    if isinstance(v, list):
        return '[' + ','.join(canon(x) for x in v) + ']'
    if isinstance(v, dict):
        # Python compares str by code point, the order the rule asks for.
        return '{' + ','.join(canon_string(k) + ':' + canon(v[k]) for k in sorted(v)) + '}'
    raise NotCanonical("unexpected %r" % (v,))


def parse(text):
    return json.loads(text, object_pairs_hook=no_duplicates)


def signed_message(rec):
    sigv = rec.get('sigv')
    if sigv == 2:
        body = {k: v for k, v in rec.items() if k != 'sig'}
        return b'hallrate-record-v2\n' + canon(body).encode('utf-8')
    if sigv is None:
        t = rec.get('ticket')
        fields = ['hallrate-record-v1', rec['id'], rec['device'], rec['hall'], rec['counter'], rec['epoch'],
                  str(rec['seq']), str(rec['button']), str(rec['satisfaction']), rec['disposition'],
                  t['id'] if t else '', rec['pressed_at'], rec.get('prev', '')]
        return '\n'.join(fields).encode('utf-8')
    raise NotCanonical("sigv %r unknown" % (sigv,))


def check_records(lines, pub):
    bad = 0
    n = 0
    links = 0
    streams = {}
    for i, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        n += 1
        try:
            rec = parse(line)
            msg = signed_message(rec)
        except (ValueError, KeyError, NotCanonical) as e:
            print("line %d: not a record: %s" % (i, e))
            bad += 1
            continue
        try:
            sig = base64.b64decode(rec.get('sig', ''), validate=True)
        except ValueError:
            sig = b''
        if not verify(pub, sig, msg):
            print("line %d: %s: BAD SIGNATURE" % (i, rec['id']))
            bad += 1
        streams.setdefault((rec['device'], rec['epoch']), {})[rec['seq']] = (rec.get('prev', ''), hashlib.sha256(msg).hexdigest(), rec['id'])
    for recs in streams.values():
        for seq, (prev, _, rid) in sorted(recs.items()):
            if seq == 1:
                ok = prev == ''
            elif seq - 1 in recs:
                ok = prev == recs[seq - 1][1]
            else:
                continue
            links += 1
            if not ok:
                print("%s: CHAIN BROKEN" % rid)
                bad += 1
    print("%d records, %d chain links checked, %d findings" % (n, links, bad))
    return bad == 0 and n > 0


def doc_blocks(path):
    text = open(path, encoding='utf-8').read()
    blocks = {}
    for m in re.finditer(r'<!-- check:([a-z0-9-]+) -->\s*```[a-z]*\n(.*?)```', text, re.S):
        blocks[m.group(1)] = m.group(2)
    return blocks


def check_doc(path):
    b = doc_blocks(path)
    need = ['sig-seed', 'sig-pubkey', 'sig-record', 'sig-message-hex', 'sig-sha256', 'sig-signature']
    missing = [k for k in need if k not in b]
    if missing:
        print("%s: no example block %s" % (path, ', '.join(missing)))
        return False
    ok = True
    seed = bytes.fromhex(b['sig-seed'].strip())
    pub = base64.b64decode(b['sig-pubkey'].strip())
    if public_of_seed(seed) != pub:
        print("the public key is not the test seed's")
        ok = False
    rec = parse(b['sig-record'])
    msg = signed_message(rec)
    want = bytes.fromhex(''.join(b['sig-message-hex'].split()))
    if msg != want:
        print("canonical bytes differ:\n got %s\nwant %s" % (msg.hex(), want.hex()))
        ok = False
    if hashlib.sha256(msg).hexdigest() != b['sig-sha256'].strip():
        print("SHA-256 differs: %s" % hashlib.sha256(msg).hexdigest())
        ok = False
    sig = base64.b64decode(b['sig-signature'].strip())
    if rec.get('sig') != b['sig-signature'].strip() or not verify(pub, sig, msg):
        print("the example's signature does not verify")
        ok = False
    print("worked example: %s" % ("ok" if ok else "FAILED"))
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--pubkey', help="the device's public key, base64 as in its status")
    ap.add_argument('--doc', help="check the worked example of this contract file")
    ap.add_argument('file', nargs='?')
    a = ap.parse_args()
    if a.doc:
        return 0 if check_doc(a.doc) else 1
    if not a.pubkey:
        ap.error("--pubkey is needed to verify records")
    src = open(a.file, encoding='utf-8') if a.file else sys.stdin
    return 0 if check_records(src.readlines(), base64.b64decode(a.pubkey)) else 1


if __name__ == '__main__':
    sys.exit(main())
