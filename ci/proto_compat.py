#!/usr/bin/env python3
"""Check that FerroKV's kvproto-compatible .proto files are a wire-compatible subset of kvproto.

Usage: proto_compat.py [KVPROTO_DIR] [--ours DIR] [-v]

KVPROTO_DIR defaults to the kvproto copy shipped in the tikv-client 0.4.0 crate source
(~/.cargo/registry/src/*/tikv-client-0.4.0/proto, searched recursively, so include/eraftpb.proto
counts). --ours defaults to proto/proto next to this script's parent directory.

For every file we declare (except FerroKV's own `ferrokv_*` packages), it fails if:
- the file's package differs from kvproto's file of the same name;
- a message, enum or service is not in kvproto under the same fully qualified name and kind;
- a field is not in kvproto's message by name, or differs in number, label (repeated/optional),
  resolved type (fully qualified, map<K,V> included) or oneof membership;
- an enum value is missing or differs in number;
- an rpc is missing, or differs in request/response type or streaming on either side;
- a `reserved` number of ours is one kvproto uses for a field we declare under another name.
With -v it also lists, per kept message, the kvproto fields we left out.

The parser is deliberately small: proto3 messages (nested), enums, oneofs, map fields, options
and reserved statements, services and rpcs. No extensions, groups or proto2 features.
"""

import argparse
import glob
import os
import re
import sys

SCALARS = {
    "double", "float", "int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32",
    "fixed64", "sfixed32", "sfixed64", "bool", "string", "bytes",
}

TOKEN = re.compile(r'\s+|//[^\n]*|/\*.*?\*/|"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|[A-Za-z_.][\w.]*|-?\d+|.', re.S)


def tokenize(text):
    return [t for t in TOKEN.findall(text) if t.strip() and not t.startswith(("//", "/*"))]


class Parser:
    """Turns one .proto file into definitions keyed by fully qualified name."""

    def __init__(self, path):
        self.path = path
        self.toks = tokenize(open(path, encoding="utf-8").read())
        self.i = 0
        self.package = ""
        self.defs = {}  # fqn -> dict(kind=..., scope=..., ...)

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else None

    def next(self):
        tok = self.peek()
        if tok is None:
            raise SyntaxError(f"{self.path}: unexpected end of file")
        self.i += 1
        return tok

    def expect(self, tok):
        got = self.next()
        if got != tok:
            raise SyntaxError(f"{self.path}: expected {tok!r}, got {got!r} (token {self.i})")

    def skip_statement(self):
        """Skip to the end of a `;`-terminated statement or a balanced `{...}` block."""
        depth = 0
        while True:
            tok = self.next()
            if tok == "{":
                depth += 1
            elif tok == "}":
                depth -= 1
                if depth == 0:
                    return
            elif tok == ";" and depth == 0:
                return

    def skip_brackets(self):
        if self.peek() == "[":
            depth = 0
            while True:
                tok = self.next()
                depth += tok == "["
                depth -= tok == "]"
                if depth == 0:
                    return

    def parse(self):
        while self.peek() is not None:
            tok = self.next()
            if tok == "package":
                self.package = self.next()
                self.expect(";")
            elif tok in ("syntax", "import", "option", "edition"):
                while self.next() != ";":
                    pass
            elif tok == "message":
                self.message(self.package)
            elif tok == "enum":
                self.enum(self.package)
            elif tok == "service":
                self.service()
            elif tok == "extend":
                self.skip_statement()
            elif tok == ";":
                pass
            else:
                raise SyntaxError(f"{self.path}: unexpected top-level token {tok!r}")
        return self

    def fqn(self, scope, name):
        return f"{scope}.{name}" if scope else name

    def message(self, scope):
        name = self.fqn(scope, self.next())
        msg = {"kind": "message", "scope": name, "fields": {}, "reserved": set(), "file": self.path}
        self.defs[name] = msg
        self.expect("{")
        self.message_body(name, msg, oneof=None)

    def message_body(self, name, msg, oneof):
        while True:
            tok = self.next()
            if tok == "}":
                return
            if tok == ";":
                continue
            if tok == "message":
                self.message(name)
            elif tok == "enum":
                self.enum(name)
            elif tok == "oneof":
                group = self.next()
                self.expect("{")
                self.message_body(name, msg, oneof=group)
            elif tok in ("option", "extensions"):
                while self.next() != ";":
                    pass
            elif tok == "extend":
                self.skip_statement()
            elif tok == "reserved":
                self.reserved(msg)
            else:
                self.field(tok, msg, oneof)

    def reserved(self, msg):
        items = []
        while True:
            tok = self.next()
            if tok == ";":
                break
            items.append(tok)
        j = 0
        while j < len(items):
            tok = items[j]
            if re.fullmatch(r"\d+", tok):
                lo = hi = int(tok)
                if j + 2 < len(items) and items[j + 1] == "to":
                    hi = 536870911 if items[j + 2] == "max" else int(items[j + 2])
                    j += 2
                msg["reserved"].update(range(lo, min(hi, lo + 100000) + 1))
            j += 1

    def field(self, first, msg, oneof):
        label = ""
        if first in ("repeated", "optional", "required"):
            label, first = first, self.next()
        if first == "map":
            self.expect("<")
            key = self.next()
            self.expect(",")
            value = self.next()
            self.expect(">")
            ftype = ("map", key, value)
        else:
            ftype = first
        fname = self.next()
        self.expect("=")
        number = int(self.next())
        self.skip_brackets()
        self.expect(";")
        msg["fields"][fname] = {"number": number, "label": label, "type": ftype, "oneof": oneof,
                                "scope": msg["scope"]}

    def enum(self, scope):
        name = self.fqn(scope, self.next())
        enum = {"kind": "enum", "values": {}, "file": self.path}
        self.defs[name] = enum
        self.expect("{")
        while True:
            tok = self.next()
            if tok == "}":
                return
            if tok == ";":
                continue
            if tok in ("option", "reserved"):
                while self.next() != ";":
                    pass
                continue
            self.expect("=")
            enum["values"][tok] = int(self.next())
            self.skip_brackets()
            self.expect(";")

    def service(self):
        name = self.fqn(self.package, self.next())
        svc = {"kind": "service", "rpcs": {}, "scope": self.package, "file": self.path}
        self.defs[name] = svc
        self.expect("{")
        while True:
            tok = self.next()
            if tok == "}":
                return
            if tok == ";":
                continue
            if tok == "option":
                while self.next() != ";":
                    pass
                continue
            if tok != "rpc":
                raise SyntaxError(f"{self.path}: unexpected {tok!r} in service {name}")
            rpc = self.next()
            sides = []
            for keyword in (None, "returns"):
                if keyword:
                    self.expect(keyword)
                self.expect("(")
                stream = self.peek() == "stream"
                if stream:
                    self.next()
                sides.append((stream, self.next()))
                self.expect(")")
            if self.peek() == "{":
                self.skip_statement()
            elif self.peek() == ";":
                self.next()
            svc["rpcs"][rpc] = {"in": sides[0], "out": sides[1]}


class Corpus:
    """All definitions from a set of .proto files, with type-name resolution."""

    def __init__(self, paths):
        self.defs = {}
        self.packages = {}  # file basename -> package
        for path in paths:
            parser = Parser(path).parse()
            self.packages[os.path.basename(path)] = parser.package
            for name, d in parser.defs.items():
                d["package"] = parser.package
                self.defs[name] = d

    def resolve(self, ref, scope):
        """Resolve a type reference the protobuf way: innermost enclosing scope first."""
        if ref in SCALARS:
            return ref
        if ref.startswith("."):
            return ref[1:] if ref[1:] in self.defs else "?" + ref
        first, _, rest = ref.partition(".")
        parts = scope.split(".") if scope else []
        for k in range(len(parts), -1, -1):
            candidate = ".".join(parts[:k] + [first])
            if candidate in self.defs or any(d.startswith(candidate + ".") for d in self.defs):
                full = candidate + ("." + rest if rest else "")
                return full if full in self.defs else "?" + full
        return "?" + ref

    def field_type(self, field):
        t = field["type"]
        if isinstance(t, tuple):
            return f"map<{self.resolve(t[1], field['scope'])},{self.resolve(t[2], field['scope'])}>"
        return self.resolve(t, field["scope"])


def default_kvproto():
    cargo_home = os.environ.get("CARGO_HOME") or os.path.expanduser("~/.cargo")
    hits = sorted(glob.glob(os.path.join(cargo_home, "registry/src/*/tikv-client-0.4.0/proto")))
    return hits[0] if hits else None


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("kvproto", nargs="?", default=default_kvproto(),
                    help="kvproto directory (searched recursively)")
    ap.add_argument("--ours", default=os.path.join(here, "..", "proto", "proto"))
    ap.add_argument("-v", "--verbose", action="store_true", help="list kvproto fields we omit")
    args = ap.parse_args()
    if not args.kvproto or not os.path.isdir(args.kvproto):
        sys.exit(f"kvproto directory not found: {args.kvproto!r} (pass it as an argument)")

    theirs = Corpus(sorted(glob.glob(os.path.join(args.kvproto, "**", "*.proto"), recursive=True)))
    our_paths = sorted(glob.glob(os.path.join(args.ours, "*.proto")))
    ours = Corpus(our_paths)

    errors = []
    omitted = []
    counts = {"message": 0, "enum": 0, "service": 0, "field": 0, "value": 0, "rpc": 0}
    checked_files = []

    # Type references must resolve within our own files (no dangling types).
    for name, d in ours.defs.items():
        if d["kind"] == "message":
            for fname, f in d["fields"].items():
                t = ours.field_type(f)
                if "?" in t:
                    errors.append(f"{name}.{fname}: type {f['type']} does not resolve in our files")

    for path in our_paths:
        base = os.path.basename(path)
        pkg = ours.packages[base]
        if pkg.startswith("ferrokv_"):
            continue  # FerroKV-internal package, not part of the kvproto surface
        checked_files.append(base)
        if base not in theirs.packages:
            errors.append(f"{base}: no kvproto file of that name")
        elif theirs.packages[base] != pkg:
            errors.append(f"{base}: package {pkg!r}, kvproto has {theirs.packages[base]!r}")

    for name, d in sorted(ours.defs.items()):
        if d["package"].startswith("ferrokv_"):
            continue
        ref = theirs.defs.get(name)
        kind = d["kind"]
        counts[kind] += 1
        if ref is None:
            errors.append(f"{kind} {name}: not in kvproto")
            continue
        if ref["kind"] != kind:
            errors.append(f"{name}: is a {kind} here, a {ref['kind']} in kvproto")
            continue
        if kind == "message":
            by_number = {f["number"]: n for n, f in ref["fields"].items()}
            for fname, f in d["fields"].items():
                counts["field"] += 1
                rf = ref["fields"].get(fname)
                where = f"{name}.{fname}"
                if rf is None:
                    errors.append(f"field {where}: not in kvproto")
                    continue
                if f["number"] != rf["number"]:
                    errors.append(f"field {where}: number {f['number']}, kvproto {rf['number']}")
                if f["label"] != rf["label"]:
                    errors.append(f"field {where}: label {f['label'] or '(none)'!r}, "
                                  f"kvproto {rf['label'] or '(none)'!r}")
                ot, tt = ours.field_type(f), theirs.field_type(rf)
                if ot != tt:
                    errors.append(f"field {where}: type {ot}, kvproto {tt}")
                if f["oneof"] != rf["oneof"]:
                    errors.append(f"field {where}: oneof {f['oneof']}, kvproto {rf['oneof']}")
            declared = {f["number"] for f in d["fields"].values()}
            for num in sorted(d["reserved"]):
                owner = by_number.get(num)
                if num in declared:
                    errors.append(f"{name}: number {num} is both reserved and declared")
                elif owner is not None and owner in d["fields"]:
                    errors.append(f"{name}: reserves {num}, which kvproto uses for {owner}")
            for rname, rf in sorted(ref["fields"].items(), key=lambda kv: kv[1]["number"]):
                if rname not in d["fields"]:
                    note = "reserved" if rf["number"] in d["reserved"] else "not reserved"
                    omitted.append(f"{name}.{rname} = {rf['number']} "
                                   f"({theirs.field_type(rf)}; {note})")
        elif kind == "enum":
            for vname, num in d["values"].items():
                counts["value"] += 1
                if vname not in ref["values"]:
                    errors.append(f"enum value {name}.{vname}: not in kvproto")
                elif ref["values"][vname] != num:
                    errors.append(f"enum value {name}.{vname}: {num}, kvproto {ref['values'][vname]}")
        else:
            for rpc, r in d["rpcs"].items():
                counts["rpc"] += 1
                rr = ref["rpcs"].get(rpc)
                if rr is None:
                    errors.append(f"rpc {name}/{rpc}: not in kvproto")
                    continue
                for side in ("in", "out"):
                    ostream, otype = r[side]
                    tstream, ttype = rr[side]
                    o = ours.resolve(otype, d["scope"])
                    t = theirs.resolve(ttype, ref["scope"])
                    if (ostream, o) != (tstream, t):
                        fmt = lambda s, ty: ("stream " if s else "") + ty
                        errors.append(f"rpc {name}/{rpc} {side}: {fmt(ostream, o)}, "
                                      f"kvproto {fmt(tstream, t)}")

    print(f"kvproto: {os.path.abspath(args.kvproto)}")
    print(f"ours:    {os.path.abspath(args.ours)} ({', '.join(checked_files)})")
    print("checked: " + ", ".join(f"{v} {k}s" for k, v in counts.items()))
    if args.verbose and omitted:
        print(f"kvproto fields omitted from messages we declare ({len(omitted)}):")
        for line in omitted:
            print(f"  {line}")
    if errors:
        print(f"FAIL: {len(errors)} incompatibilities")
        for e in errors:
            print(f"  {e}")
        return 1
    print(f"OK: wire-compatible subset of kvproto ({len(omitted)} kvproto fields omitted"
          f" from declared messages{'' if args.verbose else '; -v lists them'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
