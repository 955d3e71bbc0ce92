#!/usr/bin/env python3
"""Generate the single header single_include/blip2/blip2.hpp from include/blip2/blip2.hpp.

Every quoted include ("...", resolved relative to the including file, then to include/) is
inlined at its first point of inclusion, so headers appear in dependency order. System includes
(<...>) are kept where they are, each once. `#pragma once` lines of inlined headers are dropped.

Preprocessor conditionals are respected: a header first included inside an #if block (such as the
CUDA back end, included only under `#if defined(BLIP2_CUDA)`) is inlined there, inside the block.
A later inclusion is dropped only when it sits inside that same block (or the first one was
unconditional); otherwise the header is inlined again, and every header inlined more than once
gets an include guard so the preprocessor keeps only one copy.

The output depends only on the headers' contents: no dates, no absolute paths.

    python3 scripts/amalgamate.py            # (re)write single_include/blip2/blip2.hpp
    python3 scripts/amalgamate.py --check    # exit 1 if the committed file is stale
    python3 scripts/amalgamate.py --staged   # generate from the headers staged in the git index
                                             # (what the next commit holds), not the working tree

Standard library only (Python 3.6+).
"""

import argparse
import difflib
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = "scripts/amalgamate.py"
ENTRY = "blip2/blip2.hpp"  # relative to the include directory
HEADER_EXTENSIONS = (".hpp", ".h", ".hh", ".hxx", ".cuh", ".inl")

DIRECTIVE = re.compile(r"^\s*#\s*([A-Za-z_]\w*)(.*)$", re.S)
INCLUDE = re.compile(r'^\s*(["<])([^">]+)[">]')
PRAGMA_ONCE = re.compile(r"^\s*#\s*pragma\s+once\b")
VERSION = re.compile(r"#define\s+BLIP2_VERSION_(MAJOR|MINOR|PATCH)\s+(\d+)")
RAW_STRING_OPEN = re.compile(r'R"([^()\\\s"]{0,16})\(')
OPENERS = {"if", "ifdef", "ifndef"}
BRANCHES = {"elif", "else", "elifdef", "elifndef"}


class AmalgamateError(Exception):
    pass


class MissingHeader(AmalgamateError):
    pass


def scan(text, state):
    """Returns the lexer state after `text` (one physical line) given the state before it.

    state is None (code), "*" (inside /* */) or ")delim\"" (inside a raw string literal).
    Only comments and string/char literals matter here: they hide #directives and comment openers.
    """
    i, n = 0, len(text)
    while i < n:
        if state == "*":
            end = text.find("*/", i)
            if end < 0:
                return state
            i, state = end + 2, None
            continue
        if state is not None:  # raw string: state is its terminator
            end = text.find(state, i)
            if end < 0:
                return state
            i, state = end + len(state), None
            continue
        c = text[i]
        if c == "/" and text.startswith("//", i):
            return None
        if c == "/" and text.startswith("/*", i):
            i, state = i + 2, "*"
            continue
        if c == '"':
            raw = RAW_STRING_OPEN.match(text, i - 1) if i > 0 else None
            if raw and (i < 2 or not (text[i - 2].isalnum() or text[i - 2] == "_") or text[i - 2] in "uUL8"):
                i, state = raw.end(), ")" + raw.group(1) + '"'
                continue
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            continue
        if c == "'" and not (i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")):
            i += 1
            while i < n and text[i] != "'":
                i += 2 if text[i] == "\\" else 1
            i += 1
            continue
        i += 1
    return state


def logical_lines(text):
    """Yields (first_line_number, [physical lines], starts_in_code) with backslash continuations
    of directive lines joined, and the lexer state tracked across lines."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    state = None
    i = 0
    while i < len(lines):
        start = i
        group = [lines[i]]
        in_code = state is None
        if in_code and DIRECTIVE.match(lines[i]):
            while group[-1].endswith("\\") and i + 1 < len(lines):
                i += 1
                group.append(lines[i])
        for line in group:
            state = scan(line, state)
        yield start + 1, group, in_code
        i += 1


class Amalgamator:
    def __init__(self, include_dir, guarded):
        self.include_dir = os.path.abspath(include_dir)
        self.guarded = guarded  # headers inlined more than once (found by a first pass)
        self.out = []
        self.inlined = {}  # header -> [context of each inlining]
        self.system = {}  # <header> -> [contexts it was emitted in]
        self.next_branch = 0
        self.files = {}
        self.notes = []

    def rel(self, path):
        return os.path.relpath(path, self.include_dir).replace(os.sep, "/")

    def read(self, path):
        if path not in self.files:
            with open(path, "r", encoding="utf-8", newline="") as f:
                self.files[path] = f.read().replace("\r\n", "\n").replace("\r", "\n")
        return self.files[path]

    @staticmethod
    def visible(contexts, ctx):
        """True when something emitted in one of `contexts` is certainly seen at `ctx`: it was
        emitted in the same #if branch as ctx or one enclosing it."""
        return any(c == ctx[: len(c)] for c in contexts)

    def resolve(self, name, including, where):
        candidates = [os.path.join(os.path.dirname(including), name), os.path.join(self.include_dir, name)]
        for cand in candidates:
            cand = os.path.normpath(cand)
            if os.path.isfile(cand):
                if os.path.commonpath([cand, self.include_dir]) != self.include_dir:
                    raise AmalgamateError('%s: "%s" resolves outside include/ (%s); use <...> for external headers'
                                          % (where, name, cand))
                return cand
        raise MissingHeader('%s: cannot find "%s" (looked next to the including file and in include/)'
                              % (where, name))

    def emit_file(self, path, ctx, stack):
        # `stack` is the chain of including headers. An include cycle needs no check: an ancestor was
        # recorded in an enclosing context, so including it again is skipped, as #pragma once would.
        rel = self.rel(path)
        self.inlined.setdefault(path, []).append(ctx)
        guard = None
        if path in self.guarded:
            guard = "BLIP2_AMALGAMATED_" + re.sub(r"[^A-Za-z0-9]", "_", rel).upper()
        self.out.append("// ---- begin %s ----" % rel)
        if guard:
            self.out += ["#ifndef " + guard, "#define " + guard]
        conds = []  # this file's own open #if blocks, innermost last: branch ids
        for lineno, group, in_code in logical_lines(self.read(path)):
            where = "%s:%d" % (rel, lineno)
            m = DIRECTIVE.match("\n".join(group)) if in_code else None
            if not m:
                self.out += group
                continue
            keyword, rest = m.group(1), m.group(2)
            if keyword in OPENERS:
                self.next_branch += 1
                conds.append(self.next_branch)
            elif keyword in BRANCHES:
                if not conds:
                    raise AmalgamateError("%s: #%s without #if" % (where, keyword))
                self.next_branch += 1
                conds[-1] = self.next_branch
            elif keyword == "endif":
                if not conds:
                    raise AmalgamateError("%s: #endif without #if" % where)
                conds.pop()
            elif keyword == "pragma" and PRAGMA_ONCE.match(group[0]) and stack:
                continue  # the single header keeps only the entry header's own #pragma once
            elif keyword == "include":
                inc = INCLUDE.match(rest)
                if inc:
                    here = ctx + tuple(conds)
                    if inc.group(1) == '"':
                        try:
                            target = self.resolve(inc.group(2), path, where)
                        except MissingHeader as e:
                            if not here:
                                raise
                            # Conditional and not written yet: keep the line, as the source tree has it.
                            self.notes.append("%s; kept the #include line inside its #if block" % e)
                            self.out += group
                            continue
                        if not self.visible(self.inlined.get(target, []), here):
                            self.emit_file(target, here, stack + [path])
                        continue
                    name = inc.group(2).strip()
                    if self.visible(self.system.get(name, []), here):
                        continue
                    self.system.setdefault(name, []).append(here)
            self.out += group
        if conds:
            raise AmalgamateError("%s: %d #if block(s) not closed at the end of the file" % (rel, len(conds)))
        if guard:
            self.out.append("#endif  // " + guard)
        self.out.append("// ---- end %s ----" % rel)


def version(include_dir):
    path = os.path.join(include_dir, "blip2", "version.hpp")
    with open(path, "r", encoding="utf-8") as f:
        parts = dict(VERSION.findall(f.read()))
    try:
        return "%s.%s.%s" % (parts["MAJOR"], parts["MINOR"], parts["PATCH"])
    except KeyError:
        raise AmalgamateError("%s: BLIP2_VERSION_MAJOR/MINOR/PATCH not found" % path)


def all_headers(include_dir):
    found = []
    for dirpath, dirnames, filenames in os.walk(include_dir):
        dirnames.sort()
        for f in sorted(filenames):
            if f.endswith(HEADER_EXTENSIONS):
                found.append(os.path.normpath(os.path.join(dirpath, f)))
    return found


def generate(include_dir):
    """Returns (text of the single header, notes for the user)."""
    include_dir = os.path.abspath(include_dir)
    entry = os.path.join(include_dir, ENTRY)
    first = Amalgamator(include_dir, set())
    first.emit_file(entry, (), [])
    repeated = {p for p, contexts in first.inlined.items() if len(contexts) > 1}
    amalgamator = Amalgamator(include_dir, repeated)
    amalgamator.emit_file(entry, (), [])
    banner = [
        "// DO NOT EDIT: generated by %s from include/%s (blip2 %s)." % (SCRIPT, ENTRY, version(include_dir)),
        "// Edit the headers under include/blip2/ and rerun `python3 %s`; CI fails when this file is stale." % SCRIPT,
        "// Needs on the include path: Eigen 3.4, xsimd, nlohmann_json, stb; OpenMP optional.",
    ]
    body = amalgamator.out[1:-1]  # the entry header itself needs no begin/end markers
    at = next((i + 1 for i, line in enumerate(body) if PRAGMA_ONCE.match(line)), 0)
    body[at:at] = ["#define BLIP2_SINGLE_INCLUDE 1  // this is the single header, not include/blip2/"]
    notes = list(amalgamator.notes)
    for p in all_headers(include_dir):
        if p not in amalgamator.inlined:
            notes.append("include/%s is not reachable from include/%s, so it is not in the single header"
                         % (amalgamator.rel(p), ENTRY))
    return "\n".join(banner + body) + "\n", notes


def staged_headers(dest):
    """Copies include/ as staged in the git index into dest/include."""
    files = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "--", "include"], check=True,
                           stdout=subprocess.PIPE).stdout
    subprocess.run(["git", "-C", ROOT, "checkout-index", "-z", "--stdin", "--prefix=" + dest.rstrip("/") + "/"],
                   input=files, check=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Generate single_include/blip2/blip2.hpp from include/.")
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if the output file differs from what would be generated")
    parser.add_argument("--staged", action="store_true",
                        help="read include/ from the git index instead of the working tree, so the output matches "
                             "what the next commit contains even when others have unstaged headers in the checkout")
    parser.add_argument("--include-dir", default=os.path.join(ROOT, "include"), help=argparse.SUPPRESS)
    parser.add_argument("--output", default=os.path.join(ROOT, "single_include", "blip2", "blip2.hpp"),
                        help="file to write or check (default: single_include/blip2/blip2.hpp)")
    args = parser.parse_args(argv)
    shown = os.path.relpath(args.output, ROOT) if os.path.abspath(args.output).startswith(ROOT + os.sep) else args.output

    try:
        if args.staged:
            with tempfile.TemporaryDirectory(prefix="blip2-amalgamate-") as tmp:
                staged_headers(tmp)
                text, notes = generate(os.path.join(tmp, "include"))
        else:
            text, notes = generate(args.include_dir)
    except (AmalgamateError, OSError, UnicodeDecodeError, subprocess.CalledProcessError) as e:
        print("amalgamate.py: error: %s" % e, file=sys.stderr)
        return 2
    for note in notes:
        print("amalgamate.py: note: " + note, file=sys.stderr)

    try:
        with open(args.output, "r", encoding="utf-8", newline="") as f:
            current = f.read()
    except FileNotFoundError:
        current = None

    if args.check:
        if current == text:
            print("amalgamate.py: %s is up to date" % shown)
            return 0
        if current is None:
            print("amalgamate.py: %s is missing; run `python3 %s` and commit the result" % (shown, SCRIPT),
                  file=sys.stderr)
            return 1
        print("amalgamate.py: %s is stale: it differs from what include/ generates.\n"
              "Run `python3 %s` and commit the result. First differences:" % (shown, SCRIPT), file=sys.stderr)
        diff = list(difflib.unified_diff(current.split("\n"), text.split("\n"), "committed", "generated", n=1,
                                         lineterm=""))
        for line in diff[:40]:
            print("  " + line, file=sys.stderr)
        if len(diff) > 40:
            print("  ... (%d more diff lines)" % (len(diff) - 40), file=sys.stderr)
        return 1

    if current != text:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        print("amalgamate.py: wrote %s (%d lines)" % (shown, text.count("\n")))
    else:
        print("amalgamate.py: %s is up to date" % shown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
