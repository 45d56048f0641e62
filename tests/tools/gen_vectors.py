#!/usr/bin/env python3
"""Writes proto/vectors/frames.json: golden frames and batches for protocol v1.

This is an independent implementation of proto/PROTOCOL.md (framing, the
DEFLATE and Zstandard flags, row hashes and list checksums) in Python, with
the `zstd` command (Debian package zstd) as the Zstandard encoder, so the C
codec is checked against the specification rather than against itself. Run
it only when the protocol changes; the JSON it writes is committed.

    python3 tests/tools/gen_vectors.py > proto/vectors/frames.json
"""
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

MAGIC, VERSION, HEADER = 0xA5, 1, 24
MAX_FRAME, MAX_INFLATED, MAX_RATIO, MAX_DEPTH = 4 << 20, 16 << 20, 100, 16
T = {"HELLO": 1, "WELCOME": 2, "HEARTBEAT": 3, "ACK": 4, "ERROR": 5,
     "SYNC_START": 0x10, "JOB_RESULT": 0x12, "JOB_STATUS": 0x20, "LIST_BEGIN": 0x21,
     "BATCH": 0x22, "LIST_END": 0x23, "JOB_END": 0x24, "LOG": 0x25}


def deflate(data):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def zstd(data, level=3, content_size=True):
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        args = ["zstd", "-q", "-c", "-%d" % level, f.name]
        if not content_size:
            args.insert(1, "--no-content-size")
        return subprocess.run(args, capture_output=True, check=True).stdout


def frame(mtype, seq, ack, body, compress=False, flags=None, body_len=None, magic=MAGIC,
          version=VERSION):
    """compress: False, True or "deflate" (DEFLATE), "zstd" (Zstandard)."""
    payload = zstd(body) if compress == "zstd" else deflate(body) if compress else body
    f = ({"zstd": 2}.get(compress, 1) if compress else 0) if flags is None else flags
    n = len(body) if body_len is None else body_len
    return struct.pack(">BBBBIQQ", magic, version, mtype, f, n, seq, ack) + payload


def js(o):
    return json.dumps(o, separators=(",", ":")).encode()


def row_hash(values):
    h = hashlib.sha256()
    for v in values:
        if isinstance(v, bool):
            h.update(b"t" if v else b"f")
        elif v is None:
            h.update(b"n")
        elif isinstance(v, str):
            b = v.encode()
            h.update(b"s" + struct.pack(">I", len(b)) + b)
        elif isinstance(v, (int, float)):
            b = ("%.17g" % v).encode()
            h.update(b"d" + struct.pack(">I", len(b)) + b)
        else:
            b = json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode()
            h.update(b"j" + struct.pack(">I", len(b)) + b)
    return int.from_bytes(h.digest()[:8], "big")


frames = []


# seq and ack are decimal strings: JSON numbers cannot hold every 64-bit value.
def ok(name, mtype, seq, ack, body_obj, compress=False, raw_body=None):
    body = raw_body if raw_body is not None else js(body_obj)
    frames.append({"name": name, "hex": frame(mtype, seq, ack, body, compress).hex(),
                   "expect": "ok", "type": mtype, "seq": str(seq), "ack": str(ack),
                   "body": body_obj})


def bad(name, data, expect, why):
    frames.append({"name": name, "hex": data.hex(), "expect": expect, "why": why})


# ---- valid frames ----
ok("heartbeat_empty_body", T["HEARTBEAT"], 0, 5, {})
ok("hello", T["HELLO"], 0, 0, {
    "proto": 1, "credential": "apsa_12_" + "A" * 43,
    "agent": {"version": "0.1.0", "os": "Linux", "hostname": "erp-srv"},
    "erp": {"product": "apsync Demo ERP", "version": "1.0", "connector": "demo"},
    "entities": [{"code": "BLUE", "name": "Blue Ridge Manufacturing Inc.", "currency": "USD",
                  "lists": ["vendors", "gl_accounts"], "po_types": "standard,drop_ship"}],
    "rx": 0})
ok("sync_start", T["SYNC_START"], 1, 0,
   {"job": 41, "entity": "BLUE", "mode": "partial", "lists": None, "since": None,
    "fallback_since": "2024-05-01T10:00:00.000Z", "po": {"enabled": True, "since": None}})
ok("job_result", T["JOB_RESULT"], 2, 9,
   {"job": 41, "status": "partial", "lists": {"vendors": "success", "items": "failed"}})
vendors = {"job": 41, "list": "vendors", "key": "code", "rows": 300,
           "cols": ["code", "name", "status"],
           "data": [["V%04d" % i for i in range(300)],
                    ["Vendor %d Supply" % (i % 17) for i in range(300)],
                    ["active" if i % 9 else "inactive" for i in range(300)]]}
ok("batch_deflated", T["BATCH"], 7, 2, vendors, compress=True)
ok("batch_zstd", T["BATCH"], 8, 2, vendors, compress="zstd")
ranged = dict(vendors, after="V0000")
ok("batch_full_read_range", T["BATCH"], 9, 2, ranged, compress=True)
ok("list_end", T["LIST_END"], 8, 2,
   {"job": 41, "list": "vendors", "count": 300, "checksum": "00000000000000ff"})
ok("ack_max_u64", T["ACK"], 0, (1 << 64) - 1, {})
ok("whitespace_after_object", T["HEARTBEAT"], 0, 0, {}, raw_body=b"{}  \n")
ok("utf8_strings", T["LOG"], 3, 0, {"job": 1, "level": "info", "message": "Müller & Søn — 東京"})

# ---- invalid frames ----
hb = frame(T["HEARTBEAT"], 0, 0, b"{}")
bad("short", hb[:10], "frame_short", "shorter than the 24-byte header")
bad("bad_magic", bytes([0x41]) + hb[1:], "bad_magic", "first byte is not 0xA5")
bad("version_2", frame(T["HEARTBEAT"], 0, 0, b"{}", version=2), "unsupported_version",
    "protocol version 2")
bad("unknown_type", frame(0x7F, 0, 0, b"{}"), "bad_type", "type 0x7f is not defined")
bad("unknown_flag", frame(T["HEARTBEAT"], 0, 0, b"{}", flags=4), "bad_flags", "flag bit 2")
bad("both_codecs", frame(T["HEARTBEAT"], 0, 0, b"{}", flags=3), "bad_flags",
    "DEFLATE and Zstandard at once")
bad("sequenced_without_seq", frame(T["BATCH"], 0, 0, b"{}"), "bad_seq",
    "BATCH must carry a seq")
bad("unsequenced_with_seq", frame(T["HEARTBEAT"], 3, 0, b"{}"), "bad_seq",
    "HEARTBEAT must not carry a seq")
bad("body_len_over_limit", frame(T["HEARTBEAT"], 0, 0, b"{}", body_len=MAX_INFLATED + 1),
    "inflated_too_big", "declares 16 MiB + 1 after inflation")
bad("plain_length_mismatch", frame(T["HEARTBEAT"], 0, 0, b"{}", body_len=10), "bad_length",
    "header says 10 bytes, 2 follow")
bomb = b"{\"x\":\"" + b" " * 1000000 + b"\"}"
bad("deflate_bomb", frame(T["LOG"], 1, 0, bomb, compress=True), "ratio_exceeded",
    "1 MB of spaces from about 1 KB: ratio far above 100")
bad("deflate_corrupt", struct.pack(">BBBBIQQ", MAGIC, VERSION, T["HEARTBEAT"], 1, 2, 0, 0)
    + b"\xff\xff\xff\xff", "inflate_failed", "not a DEFLATE stream")
body = js({"a": "b" * 40})
bad("deflate_shorter_than_header", frame(T["HEARTBEAT"], 0, 0, body, compress=True,
                                         body_len=len(body) + 5), "bad_length",
    "inflates to fewer bytes than body_len")
bad("deflate_longer_than_header", frame(T["HEARTBEAT"], 0, 0, body, compress=True,
                                        body_len=len(body) - 5), "bad_length",
    "inflates to more bytes than body_len")
bad("zstd_bomb", frame(T["LOG"], 1, 0, bomb, compress="zstd"), "ratio_exceeded",
    "1 MB of spaces from a few hundred bytes of Zstandard")
bad("zstd_corrupt", struct.pack(">BBBBIQQ", MAGIC, VERSION, T["HEARTBEAT"], 2, 2, 0, 0)
    + b"\x28\xb5\x2f\xfd\xff\xff\xff\xff", "inflate_failed", "a damaged Zstandard frame")
zbody = js({"a": "b" * 40})
bad("zstd_declares_other_size", frame(T["HEARTBEAT"], 0, 0, zbody, compress="zstd",
                                      body_len=len(zbody) + 5), "bad_length",
    "the Zstandard frame declares fewer bytes than body_len")
zf = zstd(zbody, content_size=False)
bad("zstd_without_content_size",
    struct.pack(">BBBBIQQ", MAGIC, VERSION, T["HEARTBEAT"], 2, len(zbody), 0, 0) + zf,
    "bad_length", "the Zstandard frame does not declare its size")
zf = zstd(zbody)
bad("zstd_trailing_bytes",
    struct.pack(">BBBBIQQ", MAGIC, VERSION, T["HEARTBEAT"], 2, len(zbody), 0, 0) + zf + b"xx",
    "inflate_failed", "bytes after the Zstandard frame")
bad("not_json", frame(T["HEARTBEAT"], 0, 0, b"{nope"), "bad_json", "not JSON")
bad("json_array", frame(T["HEARTBEAT"], 0, 0, b"[1,2]"), "bad_json", "an array, not an object")
bad("trailing_garbage", frame(T["HEARTBEAT"], 0, 0, b"{} x"), "bad_json",
    "something after the object")
bad("invalid_utf8", frame(T["LOG"], 1, 0, b"{\"m\":\"\xc3\x28\"}"), "bad_json",
    "invalid UTF-8 sequence")
bad("overlong_utf8", frame(T["LOG"], 1, 0, b"{\"m\":\"\xc0\xaf\"}"), "bad_json",
    "overlong UTF-8 form")
deep = b"{\"a\":" * 17 + b"1" + b"}" * 17
bad("json_too_deep", frame(T["LOG"], 1, 0, deep), "json_too_deep", "17 levels of nesting")
ok_deep = b"{\"a\":" * 16 + b"1" + b"}" * 16
frames.append({"name": "json_depth_at_limit", "hex": frame(T["LOG"], 1, 0, ok_deep).hex(),
               "expect": "ok", "type": T["LOG"], "seq": "1", "ack": "0",
               "body": json.loads(ok_deep)})
# Too big to store: described, built by the tests (a header and MAX_FRAME - 23 spaces).
big_hdr = struct.pack(">BBBBIQQ", MAGIC, VERSION, T["LOG"], 0, MAX_FRAME - HEADER + 1, 1, 0)
frames.append({"name": "frame_over_4mib", "fill": {"prefix_hex": big_hdr.hex(), "byte": 32,
                                                    "length": MAX_FRAME + 1},
               "expect": "frame_too_big", "why": "4 MiB + 1 byte"})

# ---- batches: parsing rules and row hashes ----
batches = []


def batch_ok(name, body):
    rows = list(zip(*body["data"]))
    hashes = [row_hash(list(r)) for r in rows]
    batches.append({"name": name, "body": body, "expect": "ok",
                    "row_hashes": ["%016x" % h for h in hashes],
                    "checksum": "%016x" % (sum(hashes) % (1 << 64))})


batch_ok("vendors_typed_values", {
    "job": 7, "list": "vendors", "key": "code", "rows": 3,
    "cols": ["code", "name", "separate_check", "address2", "rating"],
    "data": [["V1", "V2", "Ü3"], ["Acme", "Bolt & Nut", "Çelik A.Ş."], [True, False, True],
             [None, "Suite 4", None], [1, 250, -3]]})
batch_ok("po_with_nested_lines", {
    "job": 7, "list": "purchase_orders", "key": "code", "rows": 2,
    "cols": ["code", "type", "lines"],
    "data": [["PO1", "PO2"], ["standard", "drop_ship"],
             [[{"line": 1, "item": "I1", "quantity": "2", "unit_cost": "1.50"}],
              [{"line": 1, "item": None, "quantity": "1", "unit_cost": "99.00"},
               {"line": 2, "item": "I9", "quantity": "3", "unit_cost": "0.25"}]]]})


def batch_bad(name, body, why):
    batches.append({"name": name, "body": body, "expect": "bad_message", "why": why})


good = {"job": 1, "list": "units", "key": "code", "rows": 2, "cols": ["code", "name"],
        "data": [["EA", "BOX"], ["Each", "Box"]]}


def variant(**kw):
    b = json.loads(json.dumps(good))
    b.update(kw)
    return b


batch_bad("key_not_a_column", variant(key="id"), "key column missing from cols")
batch_bad("column_length_differs", variant(data=[["EA", "BOX"], ["Each"]]),
          "a column holds fewer values than rows")
batch_bad("rows_zero", variant(rows=0, data=[[], []]), "rows must be 1..10000")
batch_bad("rows_over_limit", variant(rows=10001), "rows above 10000")
batch_bad("duplicate_column", variant(cols=["code", "code"]), "column named twice")
batch_bad("empty_key", variant(data=[["", "BOX"], ["Each", "Box"]]), "a key is empty")
batch_bad("numeric_key", variant(data=[[1, "BOX"], ["Each", "Box"]]), "a key is not a string")
batch_bad("key_too_long", variant(data=[["K" * 257, "BOX"], ["Each", "Box"]]),
          "a key longer than 256 bytes")
batch_bad("bad_list_name", variant(list="Vendors!"), "list name not [a-z0-9_]")
batch_bad("no_job", {k: v for k, v in good.items() if k != "job"}, "job missing")
batch_bad("data_count_differs", variant(data=[["EA", "BOX"]]), "fewer data arrays than cols")

json.dump({"protocol": 1,
           "limits": {"max_frame": MAX_FRAME, "max_inflated": MAX_INFLATED,
                      "max_ratio": MAX_RATIO, "max_json_depth": MAX_DEPTH},
           "frames": frames, "batches": batches},
          sys.stdout, indent=1, ensure_ascii=False)
sys.stdout.write("\n")
