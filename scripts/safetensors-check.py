#!/usr/bin/env python3
"""Reads a safetensors file with the standard library alone and checks it against an expected dump.

usage: safetensors-check.py FILE EXPECTED.json

EXPECTED.json: {"metadata": {key: value, ...},          (keys that __metadata__ must hold with these values)
                "tensors": {name: {"dtype": "F32"|"BF16", "shape": [...], "bits": [int, ...]}}}
where bits are the stored values' bit patterns (uint32 for F32, uint16 for BF16), row-major.
The file must hold exactly these tensors. Prints "ok: N tensors, B bytes" or the first differences, exit 1.
"""
import json
import struct
import sys

WIDTH = {"F32": 4, "BF16": 2}
CODE = {"F32": "I", "BF16": "H"}


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError("shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError("header length %d exceeds the file" % n)
    header = json.loads(data[8:8 + n].decode("utf-8"))
    body = data[8 + n:]
    metadata = header.pop("__metadata__", {})
    tensors = {}
    end = 0
    for name, t in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        begin, stop = t["data_offsets"]
        if begin != end:
            raise ValueError("tensor %s starts at %d, the previous ended at %d" % (name, begin, end))
        count = 1
        for d in t["shape"]:
            count *= d
        if stop - begin != count * WIDTH[t["dtype"]]:
            raise ValueError("tensor %s: %d bytes for shape %s %s" % (name, stop - begin, t["shape"], t["dtype"]))
        bits = list(struct.unpack("<%d%s" % (count, CODE[t["dtype"]]), body[begin:stop]))
        tensors[name] = {"dtype": t["dtype"], "shape": t["shape"], "bits": bits}
        end = stop
    if end != len(body):
        raise ValueError("%d data bytes, the tensors cover %d" % (len(body), end))
    return metadata, tensors


def main():
    path, expected_path = sys.argv[1], sys.argv[2]
    metadata, tensors = read(path)
    with open(expected_path) as f:
        expected = json.load(f)
    problems = []
    for key, value in expected.get("metadata", {}).items():
        if metadata.get(key) != value:
            problems.append("metadata %s: %r in the file, %r expected" % (key, metadata.get(key), value))
    want = expected["tensors"]
    for name in sorted(set(want) - set(tensors)):
        problems.append("tensor %s is missing" % name)
    for name in sorted(set(tensors) - set(want)):
        problems.append("tensor %s is not expected" % name)
    for name in sorted(set(want) & set(tensors)):
        got, exp = tensors[name], want[name]
        for field in ("dtype", "shape"):
            if got[field] != exp[field]:
                problems.append("tensor %s: %s %s, expected %s" % (name, field, got[field], exp[field]))
        if got["dtype"] == exp["dtype"] and got["shape"] == exp["shape"] and got["bits"] != exp["bits"]:
            i = next(i for i, (a, b) in enumerate(zip(got["bits"], exp["bits"])) if a != b)
            problems.append("tensor %s: value %d has bits %#x, expected %#x" % (name, i, got["bits"][i], exp["bits"][i]))
    if problems:
        print("\n".join(problems[:10]))
        return 1
    print("ok: %d tensors, %d values" % (len(tensors), sum(len(t["bits"]) for t in tensors.values())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
