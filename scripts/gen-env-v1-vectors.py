"""Generates crates/format/tests/vectors/env-v1/*.txt independently of the Rust code,
with the reference implementation of docs/formats/env-values.md section 2.

Usage (needs Python's `cryptography` package, e.g. apt-get install python3-cryptography):
  python3 scripts/gen-env-v1-vectors.py crates/format/tests/vectors/env-v1 docs/formats/env-values.md
"""
import sys, os
from base64 import urlsafe_b64encode, urlsafe_b64decode
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
import hmac, hashlib

def derive(store_key):
    prk = hmac.new(b"secure-store/env/v1", store_key.encode(), hashlib.sha256).digest()
    expand = lambda info, n: HKDFExpand(hashes.SHA256(), n, info).derive(prk)
    return expand(b"secure-store/env/v1/aes-256-gcm-key", 32), expand(b"secure-store/env/v1/key-id", 8).hex()

def v1_encrypt(store_key: str, name: str, plaintext: bytes, nonce: bytes) -> str:
    prk = hmac.new(b"secure-store/env/v1", store_key.encode(), hashlib.sha256).digest()
    expand = lambda info, n: HKDFExpand(hashes.SHA256(), n, info).derive(prk)
    key = expand(b"secure-store/env/v1/aes-256-gcm-key", 32)
    kid = expand(b"secure-store/env/v1/key-id", 8).hex()
    aad = b"secure-store/env\0v1\0" + kid.encode() + b"\0" + name.encode()
    sealed = nonce + AESGCM(key).encrypt(nonce, plaintext, aad)
    return "v1." + kid + "." + urlsafe_b64encode(sealed).rstrip(b"=").decode()

# The snippet in the doc must be the one we use.
doc = open(sys.argv[2]).read()
import inspect
src = inspect.getsource(v1_encrypt)
assert src in doc, "doc snippet differs from generator"

def b64(b): return urlsafe_b64encode(b).rstrip(b"=").decode()
def unb64(s): return urlsafe_b64decode(s + "=" * (-len(s) % 4))
def split(v):
    _, kid, p = v.split(".")
    return kid, unb64(p)

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for f in os.listdir(out):
    if f.endswith(".txt"): os.remove(os.path.join(out, f))

DEMO = "my-password-eQ4al9jgPxlWDwxL6uiGdznhhVJzaVQPnkNRjwvwoTvqWpeBJJJZ"
CRYPT = "mR7_5insPJ67KCUcmP24eRA14L_ksYe4aTfy9B9UKfI="   # base64url(32 random bytes), as the original generates
LEGACY = "62bca5ca7308305035f3f3a3ee270c026474ba430f79b17128021944d548807b"
N0 = bytes(range(12))
N1 = bytes.fromhex("8f3a61c2d04be7195a6e0c33")
N2 = bytes.fromhex("ffffffffffffffffffffffff")

def write(fname, comments, key, name, value, expect, nonce=None, pt=None):
    lines = [f"comment: {c}" for c in comments]
    lines.append(f"key: {key}")
    lines.append(f"key-id: {derive(key)[1]}")
    lines.append(f"name: {name}")
    if nonce is not None: lines.append(f"nonce: {nonce.hex()}")
    if pt is not None: lines.append(f"plaintext-hex: {pt.hex()}")
    lines.append(f"expect: {expect}")
    lines.append(f"value: {value}")
    assert all("\n" not in l and "\r" not in l for l in lines)
    with open(os.path.join(out, fname + ".txt"), "w", newline="\n") as fh:
        fh.write("\n".join(lines) + "\n")

def ok(fname, comments, key, name, pt, nonce):
    v = v1_encrypt(key, name, pt, nonce)
    write(fname, comments, key, name, v, "success", nonce, pt)
    return v

base_pt = b"this-is-my-new-test-api-key"
base = ok("success-api-key", ["The upstream demo store key and plaintext, as v1."], DEMO, "API_KEY", base_pt, N0)
ok("success-empty-plaintext", ["An empty plaintext: the payload is nonce and tag only (28 bytes)."], DEMO, "EMPTY", b"", N1)
ok("success-one-byte", ["A single zero byte."], DEMO, "ONE", b"\x00", N2)
ok("success-unicode", ["UTF-8 plaintext with a newline; a lower-case name."], CRYPT, "db_password", "pässwörd 🔑 ключ\n".encode(), N1)
ok("success-all-bytes", ["Every byte value 0..255."], CRYPT, "BLOB", bytes(range(256)), N0)
ok("success-random-store-key", ["A store key shaped like the original's (base64url of 32 random bytes)."], CRYPT, "DB_PASSWORD", b"correct horse battery staple", N2)
ok("success-hex-store-key-is-a-string", ["A 64-hex store key is used as a string in v1 (no hex decoding, unlike legacy v0)."], LEGACY, "API_KEY", b"this-is-my-test-api-key", N0)
ok("success-underscore-name", ["Names may start with an underscore and contain digits."], CRYPT, "_X9", b"x", N1)

# Names: moved / case / prefix not stripped.
write("authentication-name-moved", ["success-api-key's value under another variable name."], DEMO, "OTHER_KEY", base, "authentication")
write("authentication-name-case", ["The name is bound exactly: case matters."], DEMO, "api_key", base, "authentication")
write("authentication-name-with-prefix", ["The caller forgot to strip ENCRYPTED_ from the name."], DEMO, "ENCRYPTED_API_KEY", base, "authentication")

kid, sealed = split(base)
def tamper(i, bit=1):
    b = bytearray(sealed); b[i] ^= bit; return f"v1.{kid}.{b64(bytes(b))}"
write("authentication-tampered-tag", ["success-api-key with the last tag byte's low bit flipped."], DEMO, "API_KEY", tamper(len(sealed) - 1), "authentication")
write("authentication-tampered-ciphertext", ["success-api-key with the first ciphertext byte flipped."], DEMO, "API_KEY", tamper(12, 0x80), "authentication")
write("authentication-tampered-nonce", ["success-api-key with the first nonce byte flipped."], DEMO, "API_KEY", tamper(0), "authentication")
write("authentication-truncated-one-byte", ["success-api-key with its last byte removed (still valid base64)."], DEMO, "API_KEY", f"v1.{kid}.{b64(sealed[:-1])}", "authentication")
other_kid = derive(CRYPT)[1]
write("authentication-kid-swapped", ["success-api-key relabeled with CRYPT's kid and decrypted with CRYPT's key:", "the kid check passes, the tag (which covers the kid and the key) does not."], CRYPT, "API_KEY", f"v1.{other_kid}.{b64(sealed)}", "authentication")

write("wrong-key", ["success-api-key decrypted with another store key: WrongKey before any decryption."], CRYPT, "API_KEY", base, "wrong-key")
write("wrong-key-tampered-kid", ["success-api-key with one kid digit changed: WrongKey names the tampered kid."], DEMO, "API_KEY", f"v1.{kid[:-1]}{'0' if kid[-1] != '0' else '1'}.{b64(sealed)}", "wrong-key")

write("too-short-27-bytes", ["A payload of 27 bytes, one short of nonce + tag."], DEMO, "API_KEY", f"v1.{kid}.{b64(sealed[:27])}", "too-short")
write("too-short-empty-payload", ["Nothing after the second dot."], DEMO, "API_KEY", f"v1.{kid}.", "too-short")

p = b64(sealed)
cut = p[: (len(p) // 4) * 4 - 3]   # length = 1 mod 4: impossible for base64
assert len(cut) % 4 == 1
write("bad-encoding-truncated-mid-character", ["success-api-key cut so that the payload length is 1 mod 4."], DEMO, "API_KEY", f"v1.{kid}.{cut}", "bad-encoding")
write("bad-encoding-padding", ["Padding '=' is not allowed."], DEMO, "API_KEY", f"v1.{kid}.{p}" + "=" * (-len(p) % 4 or 4), "bad-encoding")
# Non-canonical: change unused trailing bits of the last character.
alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
last = alpha.index(p[-1])
nc = p[:-1] + alpha[last | 1]
assert nc != p
write("bad-encoding-non-canonical", ["The last character's unused low bits are not zero."], DEMO, "API_KEY", f"v1.{kid}.{nc}", "bad-encoding")
for i in range(256):
    v = v1_encrypt(DEMO, "API_KEY", base_pt, bytes([i]) + N0[1:])
    if "-" in v[20:] or "_" in v[20:]:
        std = v[:20] + v[20:].replace("-", "+").replace("_", "/")
        break
write("bad-encoding-standard-alphabet", ["A valid value rewritten in standard base64 ('+' and '/')."], DEMO, "API_KEY", std, "bad-encoding")
write("bad-encoding-uppercase-kid", ["The kid must be lowercase hex."], DEMO, "API_KEY", f"v1.{kid.upper()}.{p}", "bad-encoding")
write("bad-encoding-short-kid", ["A 15-digit kid."], DEMO, "API_KEY", f"v1.{kid[:-1]}.{p}", "bad-encoding")
write("bad-encoding-missing-kid", ["No kid field."], DEMO, "API_KEY", f"v1.{p}", "bad-encoding")
write("bad-encoding-extra-field", ["A fourth dot-separated field."], DEMO, "API_KEY", f"{base}.x", "bad-encoding")
write("unknown-format-v2", ["A future version is not guessed at."], DEMO, "API_KEY", "v2" + base[2:], "unknown-format")
write("unknown-format-quoted", ["Quotes left over from a dotenv file are not stripped."], DEMO, "API_KEY", f'"{base}"', "unknown-format")
write("unknown-format-uppercase-version", ["The version prefix is case-sensitive."], DEMO, "API_KEY", "V1" + base[2:], "unknown-format")
print(len([f for f in os.listdir(out) if f.endswith('.txt')]), "files")
