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


seeds = {
    t: {}
    for t in (
        "deframe_decode_2020",
        "deframe_decode_2026",
        "pson_v2",
        "protoson",
        "session_client",
        "session_server",
        "session_odd",
    )
}


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

# ---------------------------------------------------------------------------------------------
# Session targets. Their inputs are read with arbitrary::Unstructured (fuzz/src/client_fuzz.rs,
# server_fuzz.rs, odd.rs): a choice from n <= 256 options takes one byte (value % n), a bool one
# byte (low bit), and steps follow the configuration back to back. The seeds below spell out
# the vector sessions in that layout, so fuzzing starts from complete, valid conversations.
# ---------------------------------------------------------------------------------------------

MAX_CHUNK = 96  # largest raw input one step feeds (MAX_CHUNK in the harness)


def feed(data):
    """Input steps (selector 0, length byte, bytes) covering `data` in order."""
    out = bytearray()
    for i in range(0, len(data), MAX_CHUNK):
        chunk = data[i : i + MAX_CHUNK]
        out += bytes([0, len(chunk)]) + chunk
    return bytes(out)


ADVANCE_1S = bytes([3, 1, 0x03, 0xE8])  # step 3 (advance), kind 1 (0..=2000 ms), 1000 ms
TO_DEADLINE = bytes([4])
# Client command (step 5): respond (0) to the first pending RUN (0), success (ratio byte 1),
# no value (0), no return code (0).
RESPOND = bytes([5, 0, 0, 1, 0, 0])
# Server command (step 5): accept (0).
ACCEPT = bytes([5, 0])


def client_config(dialect):
    # dialect bit, keep-alive 30 s (index 2), then every limit at its default (index 0).
    return bytes([1 if dialect == "2026" else 0, 2, 0, 0, 0, 0, 0])


# Server config: every pick at its default (index 0), then "no TLS" (ratio byte 1).
SERVER_CONFIG = bytes([0] * 9 + [1])
DECLARED = ('"led"', '"temp"', '"dim"', '"reboot"', '"sensors/hum"')


def parse_session_file(name):
    """[(section title, [(direction, message line, frame bytes)])] of a sessions-*.txt file."""
    sections, current, pending = [], None, None
    with open(os.path.join(vectors, name), encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("# "):
                current = (line, [])
                sections.append(current)
            elif line.startswith(("C->S", "S->C")):
                pending = (line[:4], line[4:].strip())
            elif pending and line.startswith("      ") and current is not None:
                frame = bytes.fromhex(line.replace("|", " "))
                current[1].append((pending[0], pending[1], frame))
                pending = None
    return sections


def client_steps(frames):
    """S->C frames fed to the device, each RUN of a declared resource answered."""
    out = bytearray()
    for direction, text, frame in frames:
        if direction != "S->C":
            continue
        out += feed(frame)
        if text.startswith("RUN stream_id=") and any(r in text for r in DECLARED):
            out += RESPOND
        if "(t=" in text:
            out += ADVANCE_1S
    return bytes(out)


def server_steps(frames):
    """C->S frames fed to the server, the first CONNECT accepted."""
    out = bytearray()
    accepted = False
    for direction, text, frame in frames:
        if direction != "C->S":
            continue
        out += feed(frame)
        if text.startswith("CONNECT") and not accepted:
            out += ACCEPT
            accepted = True
        if "(t=" in text:
            out += ADVANCE_1S
    return bytes(out)


for dialect in ("2020", "2026"):
    sections = parse_session_file(f"sessions-{dialect}.txt")
    everything = [f for _, frames in sections for f in frames]
    connect = [f for f in everything if f[0] == "C->S" and f[1].startswith("CONNECT")][:1]
    ok = [f for f in everything if f[0] == "S->C" and f[1].startswith("OK")][:1]
    # The whole file as one conversation, then each section on a fresh connection.
    add("session_client", client_config(dialect) + client_steps(everything) + TO_DEADLINE)
    add("session_server", SERVER_CONFIG + server_steps(everything) + TO_DEADLINE)
    for _, frames in sections:
        add("session_client", client_config(dialect) + client_steps(ok + frames))
        add("session_server", SERVER_CONFIG + server_steps(connect + frames))
    # Every vector frame of the dialect on its own, after a connection is up.
    frame_files = ["frames-2020.json"] if dialect == "2020" else ["frames-2026.json", "captured-2026.json"]
    first_connect = connect[0][2] if connect else b""
    first_ok = ok[0][2] if ok else b""
    for name in frame_files:
        for entry in load(name):
            for data in entry_bytes(entry):
                add("session_client", client_config(dialect) + feed(first_ok) + feed(data) + RESPOND)
                add("session_server", SERVER_CONFIG + feed(first_connect) + ACCEPT + feed(data))
                if entry.get("message", {}).get("type") == "CONNECT":
                    add("session_server", SERVER_CONFIG + feed(data) + ACCEPT)

# session_odd builds its frames with the encoder, so the vectors cannot be replayed into it;
# its seeds pick each side and dialect and walk every step kind once, and libFuzzer grows the
# rest. Layout: side bit, configuration (zeros = defaults), dialect bit, flavour, CONNECT
# choice, accept (ratio byte 1), then steps.
ODD_STEPS = bytes([0, 5, 1, 1, 0xF4, 2, 3, 0] + [k for k in range(5, 10) for _ in range(3)] + [9] * 24)
for side in (0, 1):
    for dialect_bit in (0, 1):
        for flavour_byte in (1, 0):
            if side == 1:
                head = bytes([1]) + bytes([0] * 9 + [1]) + bytes([dialect_bit, flavour_byte, 7, 1])
            else:
                head = bytes([0, dialect_bit]) + bytes([2, 0, 0, 0, 0, 0]) + bytes([7, flavour_byte])
            add("session_odd", head + ODD_STEPS)
            add("session_odd", head + bytes(range(256)))

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
