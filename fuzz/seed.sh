#!/usr/bin/env bash
# Writes the seed corpora fuzz/corpus/<target>/ from the spec's test vectors.
#
# The corpus folders are git-ignored, so run this before fuzzing (run.sh does). Seeds are named
# seed-*; anything else libFuzzer has added to a corpus folder is left alone.
#
# Vector folder: $IOTMP_VECTORS, else ../shared/spec/vectors from the repository root (the same
# rule as the test suite).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
vectors="${IOTMP_VECTORS:-$here/../../shared/spec/vectors}"
if [[ ! -d "$vectors" ]]; then
    echo "seed.sh: vector folder $vectors not found (set IOTMP_VECTORS)" >&2
    exit 1
fi

python3 - "$vectors" "$here/corpus" <<'PY'
import hashlib
import json
import os
import sys

vectors, corpus = sys.argv[1], sys.argv[2]

# Longest seed written; run.sh passes a larger -max_len, so no seed gets cut.
MAX_SEED = 4000

# Control bytes put in front of every deframe seed (see fuzz/src/lib.rs, `Chunker`):
#   0x00 -> chunks of 0..1 bytes; 0x03 -> 0..7; 0x0F -> up to 32767 (practically whole);
#   0xB2 -> 0..3-byte chunks with a body limit of 27 bytes.
CONTROLS = [0x00, 0x03, 0x0F, 0xB2]


def load(name):
    with open(os.path.join(vectors, name), encoding="utf-8") as f:
        return json.load(f)


def unhex(text):
    # "0A 1B ..." upper case, one space between bytes; "" is zero bytes.
    return bytes.fromhex(text)


def repeat(spec):
    data = bytes.fromhex(spec["byte"]) * spec["count"] + bytes.fromhex(spec.get("then", ""))
    if len(data) > MAX_SEED:
        # Keep the shape (a long run, then the tail) within the seed limit.
        tail = bytes.fromhex(spec.get("then", ""))
        data = bytes.fromhex(spec["byte"]) * (MAX_SEED - len(tail)) + tail
    return data


seeds = {t: {} for t in ("deframe_decode_2020", "deframe_decode_2026", "pson_v2", "protoson")}


def add(target, data):
    if len(data) > MAX_SEED:
        data = data[:MAX_SEED]
    seeds[target][hashlib.sha1(data).hexdigest()[:16]] = data


def add_stream(target, stream):
    for control in CONTROLS:
        add(target, bytes([control]) + stream)


def entry_bytes(entry):
    out = []
    for key in ("hex", "canonical_hex", "reply_hex"):
        if key in entry:
            out.append(unhex(entry[key]))
    if "hex_repeat" in entry:
        out.append(repeat(entry["hex_repeat"]))
    return out


streams = {"2020": [], "2026": []}
for name, dialect in (("frames-2020.json", "2020"), ("frames-2026.json", "2026"), ("captured-2026.json", "2026")):
    for entry in load(name):
        for data in entry_bytes(entry):
            streams[dialect].append(data)
            add_stream("deframe_decode_" + dialect, data)

for entry in load("invalid.json"):
    dialect = entry.get("dialect")
    for data in entry_bytes(entry):
        if dialect == "pson-v2":
            add("pson_v2", data)
        elif dialect == "pson-v1":
            add("protoson", data)
        elif dialect in ("2020", "2026"):
            add_stream("deframe_decode_" + dialect, data)
        elif dialect == "detect":
            add_stream("deframe_decode_2020", data)
            add_stream("deframe_decode_2026", data)

# Whole sessions: every valid frame of a dialect back to back, as one stream.
for dialect, frames in streams.items():
    add_stream("deframe_decode_" + dialect, b"".join(frames))

for name, target in (("pson-v2.json", "pson_v2"), ("pson-v1.json", "protoson")):
    for entry in load(name):
        for data in entry_bytes(entry):
            add(target, data)

# Seed files are named by content hash, so an existing file already holds the right bytes: only
# missing seeds are written (through a temporary name) and only stale ones removed. That keeps a
# second run.sh started alongside a first from disturbing the corpus the first one is reading.
for target, files in seeds.items():
    folder = os.path.join(corpus, target)
    os.makedirs(folder, exist_ok=True)
    wanted = {"seed-" + digest for digest in files}
    for old in os.listdir(folder):
        if old.startswith("seed-") and old not in wanted:
            os.remove(os.path.join(folder, old))
    written = 0
    for digest, data in files.items():
        path = os.path.join(folder, "seed-" + digest)
        if os.path.exists(path):
            continue
        tmp = os.path.join(folder, ".tmp-" + digest + "-" + str(os.getpid()))
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        written += 1
    print(f"seed.sh: {len(files):4d} seeds ({written} new) -> corpus/{target}/")
PY
