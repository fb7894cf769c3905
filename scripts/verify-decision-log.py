#!/usr/bin/env python3
"""Checks a Tollgate decision log's hash chain with nothing but Python's standard library.

Usage: verify-decision-log.py FILE...   (a rotated set oldest first: decisions.jsonl.2 .1 then the live file)

Each record's `hash` is the SHA-256 of its line as written, up to its hash member: the line
with its trailing `,"hash":"<hex>"}` replaced by `}` (scheme `sha256-line`, named by each
file's genesis record). Each record's `prev_hash` is the hash of the record before it, and
`seq` counts up by one. Prints the last hash (keep it elsewhere: a chain cannot show by itself
that its newest records were cut off) and exits 1 at the first break.
"""
import hashlib
import json
import re
import sys

TAIL = re.compile(rb',"hash":"([0-9a-f]{64})"\}$')


def main(paths):
    prev_hash, prev_seq = None, None
    for path in paths:
        with open(path, "rb") as lines:
            for number, line in enumerate(lines, 1):
                where = f"{path}:{number}"
                line = line.rstrip(b"\n")
                tail = TAIL.search(line)
                if tail is None:
                    return fail(where, "the line does not end in its hash member")
                record = json.loads(line)
                if number == 1 and record.get("hash_scheme") != "sha256-line":
                    return fail(where, "the file's genesis names no sha256-line scheme (use `tollgate audit verify`)")
                if hashlib.sha256(line[: tail.start()] + b"}").hexdigest() != tail.group(1).decode():
                    return fail(where, "the record does not match its hash: it was edited")
                if prev_hash is not None and (record["prev_hash"] != prev_hash or record["seq"] != prev_seq + 1):
                    return fail(where, "the record does not follow the one before it")
                prev_hash, prev_seq = tail.group(1).decode(), record["seq"]
    print(f"ok: chain intact; head {prev_hash}")
    return 0


def fail(where, why):
    print(f"{where}: {why}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1:]))
