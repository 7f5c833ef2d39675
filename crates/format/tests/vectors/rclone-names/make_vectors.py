#!/usr/bin/env python3
"""Regenerates the name vectors in this folder with the real `rclone` binary.

Run from anywhere: `python3 make_vectors.py [path/to/rclone]`. It needs only
the Python standard library and rclone (the committed files were made with
Debian's rclone 1.60.1). For every case below it

1. writes `rclone.conf` (remote `vector`, `type = crypt`, `remote = crypt`,
   the case's options, the password obscured by `rclone obscure`);
2. builds a tree of empty files in a temporary folder, runs
   `rclone copy plain vector:` and records `--crypt-show-mapping` of
   `rclone lsf -R vector:` as `names.tsv` (`d`/`f`, plaintext path, encrypted
   path), checking that the mapped names are exactly what is on disk;
3. adds long file names (too long for a local file system once encrypted)
   with `rclone cryptdecode --reverse`;
4. asks `rclone cryptdecode` to decrypt hand-made encrypted names (canonical,
   non-canonical, malformed) and records what it answers as `decode.tsv`.

Every value in the output comes from rclone; this script only chooses inputs.
"""

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
RCLONE = sys.argv[1] if len(sys.argv) > 1 else "rclone"
PASSWORD = "secure-store test password A"
# scrypt(PASSWORD, rclone's built-in salt), the same keys as the shared case A.
DERIVED = (
    "547fa0694d2bf9234db646570bf554e73b957478ff9db983cae9cd9249a6d260"
    "b0d4d1b24d7a9d1dd3cc67376eb6f471b392a2c7b17d56bd7cdcdc0710b655a4"
    "97043dd637c97c4731cbad5b8403f80f"
)

CASES = [
    ("case-f-base32768", {"filename_encoding": "base32768"}),
    ("case-g-plain-dirs", {"directory_name_encryption": "false"}),
    ("case-h-base32768-plain-dirs",
     {"filename_encoding": "base32768", "directory_name_encryption": "false"}),
    ("case-i-base64-plain-dirs",
     {"filename_encoding": "base64", "directory_name_encryption": "false"}),
    ("case-j-obfuscate-plain-dirs",
     {"filename_encryption": "obfuscate", "directory_name_encryption": "false"}),
    ("case-k-names-off", {"filename_encryption": "off"}),
]

VERSION = "-v2021-01-02-150405-000"

TREE_FILES = [
    "a",
    ".hidden",
    "fifteen_bytes_x",
    "sixteen_bytes_xx",
    "seventeen_bytes_x",
    "L" * 139 + ".txt",
    "héllo wörld.txt",
    "日本語のファイル名.txt",
    "emoji_😀_name.txt",
    "Ελληνικά.md",
    "spaces & symbols !#$%'()+,;=@[]^_`{}~.txt",
    "wow!.txt",
    "digits 0123456789.txt",
    "latin1 ÀÆÇÐñÿ¡¿.txt",
    "report" + VERSION + ".txt",
    "archive.tar" + VERSION + ".gz",
    "bad-month-v2021-13-02-150405-000.txt",
    "no-leap-v2021-02-29-000000-000.txt",
    "dir1/sibling.txt",
    "dir1/dir2/dir3/deep.txt",
    "Ünïcödé dir/inner file.txt",
    "Ünïcödé dir/sub dir/x.bin",
    "snapshot" + VERSION + "/inside.txt",
]

# File names only: rclone can encrypt them but a local disk cannot hold all
# of their encrypted forms. Lengths are in UTF-8 bytes.
LONG_NAMES = [
    "x" * 31, "x" * 32, "x" * 33, "x" * 47, "x" * 48, "x" * 63, "x" * 64,
    "y" * 95, "y" * 96, "y" * 127, "y" * 128, "z" * 200, "z" * 255,
    "é" * 128, "日" * 85, "w" * 1000, "m" * 2031, "M" * 2032, "n" * 2047,
    "-v2021-01-02-150405-000",
    ".-v2021-01-02-150405-000",
    "double-v2021-01-02-150405-000-v2021-01-02-150405-+12.txt",
    "zero-v2021-01-02-150405--00",
    "leap-v2020-02-29-235959-999.dat",
    "hour-v2021-01-02-240000-000",
]


def run(args, cwd, **kw):
    return subprocess.run([RCLONE, "--config", "rclone.conf", *args], cwd=cwd,
                          check=True, capture_output=True, text=True, **kw)


def go_unquote(s):
    """Reverses Go's strconv.Quote (what rclone's %q log lines use)."""
    assert s[0] == '"' and s[-1] == '"', s
    out, i, s = [], 0, s[1:-1]
    simple = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
              "t": "\t", "v": "\v", "\\": "\\", '"': '"'}
    while i < len(s):
        c = s[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = s[i + 1]
        if e in simple:
            out.append(simple[e])
            i += 2
        elif e in "xuU":
            n = {"x": 2, "u": 4, "U": 8}[e]
            out.append(chr(int(s[i + 2:i + 2 + n], 16)))
            i += 2 + n
        else:
            raise ValueError(s)
    return "".join(out)


def cryptdecode(cwd, names, reverse=False):
    """Returns rclone's answer for each name (None when it failed)."""
    answers = []
    for start in range(0, len(names), 10):  # cryptdecode takes 10 at most
        chunk = names[start:start + 10]
        args = ["cryptdecode", "--", "vector:", *chunk]
        if reverse:
            args.insert(1, "--reverse")
        lines = run(args, cwd).stdout.split("\n")
        assert lines[-1] == "", lines
        lines = lines[:-1]
        assert len(lines) == len(chunk), (chunk, lines)
        for name, line in zip(chunk, lines):
            left, right = line.split(" \t ")
            assert left == name, (left, name)
            answers.append(None if right == "Failed to decrypt" else right)
    return answers


def crafted_inputs(cwd, options):
    """Encrypted names to ask rclone about, made from its own outputs."""
    enc_a, enc_16, enc_report, enc_dot, enc_dotdot = cryptdecode(
        cwd, ["a", "sixteen_bytes_xx", "report" + VERSION + ".txt", ".", ".."],
        reverse=True)
    mode = options.get("filename_encryption", "standard")
    encoding = options.get("filename_encoding", "base32")
    inputs = [enc_a, enc_16, enc_report, enc_dot, enc_dotdot, ".", "..",
              "garbage", "x", enc_a + VERSION]
    if mode == "off":
        return inputs + ["a.bin", ".bin", "a", "a.bin.bin", "a.BIN",
                         VERSION + ".bin", "x" + VERSION + ".bin",
                         "..bin", "...bin"]
    if mode == "obfuscate":
        return inputs + ["97.l", "+97.l", "0097.l", "-5.abcXYZ019", "353.l",
                         "!.as-is", "!.", "1...", "1.", "abc", "x.abc",
                         "99999999999999999999.a", "9223372036854775807.Az9",
                         "-9223372036854775808.Az9", "7.!!x!y", "7.!",
                         "12.ÀÿĀ日😀", "0. spaces &; kept"]
    if encoding == "base32":
        raw17 = base64.b32hexencode(bytes(range(17))).decode().rstrip("=").lower()
        too_long = base64.b32hexencode(bytes(2064)).decode().rstrip("=").lower()
        max_len = base64.b32hexencode(bytes(2048)).decode().rstrip("=").lower()
        return inputs + [enc_a.upper(), enc_a[:5].upper() + enc_a[5:],
                         enc_a + "=", enc_a + "======", enc_a[:-1] + "p",
                         enc_a[:-1] + "v", enc_a[:-1], enc_a + "0",
                         enc_a.replace("i", "ı", 1), enc_a.replace("s", "ſ", 1),
                         enc_a[:3] + "=" + enc_a[4:], raw17, too_long, max_len,
                         enc_16[:26], "0" * 26]
    if encoding == "base64":
        raw17 = base64.urlsafe_b64encode(bytes(range(17))).decode().rstrip("=")
        too_long = base64.urlsafe_b64encode(bytes(2064)).decode().rstrip("=")
        return inputs + [enc_a + "=", enc_a + "==", enc_a[:-1] + "A",
                         enc_a[:-1] + "B", enc_a[:-1], enc_a + "A",
                         enc_a.replace("-", "+").replace("_", "/"),
                         raw17, too_long, enc_16[:22]]
    # base32768
    return inputs + [enc_a + "ꈟ", enc_a + "a", enc_16[:-1], enc_16 + "ƀ",
                     enc_16 + "ƀƀ", enc_16 + "ƀ日", enc_a[:-1], enc_a[1:],
                     enc_a[:-1] + "ƀ", enc_a[:-1] + "ɀ", enc_a[:-1] + "ʟ",
                     enc_a[:-1] + "Ҡ", enc_a[:-1] + "A", enc_a + "😀",
                     enc_16[:-1] + "ƀ", enc_16[:-1] + "ƟƟ", "ƀ", "ƀƀ"]


def make_case(name, options):
    out_dir = os.path.join(HERE, name)
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        obscured = subprocess.run([RCLONE, "obscure", PASSWORD], check=True,
                                  capture_output=True, text=True).stdout.strip()
        conf = "[vector]\ntype = crypt\nremote = crypt\npassword = %s\n" % obscured
        conf += "".join("%s = %s\n" % kv for kv in options.items())
        with open(os.path.join(tmp, "rclone.conf"), "w") as f:
            f.write(conf)
        shutil.copy(os.path.join(tmp, "rclone.conf"), out_dir)

        for rel in TREE_FILES:
            path = os.path.join(tmp, "plain", rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "w").close()
        run(["copy", "plain", "vector:"], tmp)
        on_disk = {}
        for root, dirs, files in os.walk(os.path.join(tmp, "crypt")):
            for kind, entries in (("d", dirs), ("f", files)):
                for entry in entries:
                    rel = os.path.relpath(os.path.join(root, entry),
                                          os.path.join(tmp, "crypt"))
                    on_disk[rel] = kind
        # Files: what `rclone copy` used is EncryptFileName, which is what
        # `cryptdecode --reverse` prints.
        rows = [("f", p, e) for p, e in
                zip(TREE_FILES, cryptdecode(tmp, TREE_FILES, reverse=True))]
        # Directories: the mapping rclone logs while listing. rclone cannot
        # list inside a directory whose name looks like a version (it looks
        # for enc(name without version) + version there), so errors are
        # expected and the listing is not checked for success.
        listing = subprocess.run(
            [RCLONE, "--config", "rclone.conf", "lsf", "-R", "vector:",
             "--crypt-show-mapping"], cwd=tmp, capture_output=True, text=True)
        pattern = re.compile(r'NOTICE: (.*): Encrypts to (".*")$')
        for line in listing.stderr.split("\n"):
            m = pattern.search(line)
            if m and on_disk.get(go_unquote(m.group(2))) == "d":
                rows.append(("d", m.group(1), go_unquote(m.group(2))))
        assert {r[2]: r[0] for r in rows} == on_disk, "mapping != disk"
        rows.sort(key=lambda r: r[1])
        long_enc = cryptdecode(tmp, LONG_NAMES, reverse=True)
        rows += [("f", p, e) for p, e in zip(LONG_NAMES, long_enc)]
        # What rclone decrypts each encrypted path back to: for directories
        # the listing above (that is its decryption), for files cryptdecode.
        # A few names do not survive the round trip in rclone itself.
        files = [r[2] for r in rows if r[0] == "f"]
        back = dict(zip(files, cryptdecode(tmp, files)))
        rows = [r + ((r[1] if r[0] == "d" else back[r[2]] or "!"),)
                for r in rows]
        with open(os.path.join(out_dir, "names.tsv"), "w") as f:
            f.write("# kind (d = directory, f = file)\tplaintext path\t"
                    "encrypted path (from rclone --crypt-show-mapping or "
                    "cryptdecode --reverse)\twhat rclone decrypts it to "
                    "(! = it cannot)\n")
            for row in rows:
                f.write("\t".join(row) + "\n")

        inputs = crafted_inputs(tmp, options)
        answers = cryptdecode(tmp, inputs)
        with open(os.path.join(out_dir, "decode.tsv"), "w") as f:
            f.write("# encrypted name\twhat `rclone cryptdecode` answered "
                    "(! = Failed to decrypt)\n")
            for inp, ans in zip(inputs, answers):
                f.write("%s\t%s\n" % (inp, "!" if ans is None else ans))

        with open(os.path.join(out_dir, "keys.json"), "w") as f:
            json.dump({"password": PASSWORD, "password2": "",
                       "derived_80_bytes_hex": DERIVED,
                       "options": options}, f, indent=2, ensure_ascii=False)
            f.write("\n")
    print("wrote", out_dir)


if __name__ == "__main__":
    version = subprocess.run([RCLONE, "version"], check=True,
                             capture_output=True, text=True).stdout.split("\n")[0]
    print("using", version)
    for case_name, case_options in CASES:
        make_case(case_name, case_options)
