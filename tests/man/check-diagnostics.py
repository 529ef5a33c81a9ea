#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""isboot.4's DIAGNOSTICS against the messages the module can print, read from the source.

The messages are extracted mechanically, so the check follows the code as it changes:
  - driver/kmod/src: every `klog!(LEVEL, "format", ...)`; LEVEL is a number, a constant of
    driver/kmod/src/log.rs (ALWAYS, HIGH, ...) or anything else ("variable": it may be 0);
  - driver/core/src (tests excluded): every `log!(LOG, Level::X, "format", ...)`, the session's
    messages, which the module prints through klog!; at the level `session_level` in
    driver/kmod/src/log.rs maps Level::X to (`Level::Note => ALWAYS`: the session's notes are
    milestones printed by default), else at Level::X's number in driver/core/src/port.rs;
  - bindings/*.c: printf(9)/log(9) formats (the "%.*s" pass-through excluded).
A leading "isboot: " is dropped (printf adds it). Rust `{...}` and C `%...` conversions become
placeholders, as do the `%s`/`%d`/`%u`/`%x`/`%#x`/`%zu` of the man page's `.It "..."` entries.

Fails when
  1. a DIAGNOSTICS entry matches no message of the code (an entry for a message that is gone
     or was reworded); a placeholder of the code may stand for the entry's conversion or for
     any one string literal of the sources (messages made of two strings);
  2. a message printed at the default level (net.isboot.debug=0: level 0, or a level the
     extraction cannot tell) is not documented.

usage: check-diagnostics.py [--top DIR] [--page FILE] [--list] [--self-test]
"""
import argparse
import pathlib
import re
import sys

PLACEHOLDER = "\x00"
RUST_ARG = re.compile(r"\{(?:[A-Za-z_][A-Za-z0-9_.]*)?(?::[^{}]*)?\}")
C_CONV = re.compile(r"%[-+ #0]*(?:\*|\d+)?(?:\.(?:\*|\d+))?(?:hh|h|ll|l|j|z|t|L)?[diouxXcspb]")


def rust_string(text, i):
    """Parses the Rust string literal starting at text[i] ('"' or r#"); returns (value, end)."""
    if text.startswith("r", i):
        m = re.compile(r'r(#*)"').match(text, i)
        close = '"' + m.group(1)
        end = text.index(close, m.end())
        return text[m.end():end], end + len(close)
    assert text[i] == '"'
    out, j = [], i + 1
    while text[j] != '"':
        c = text[j]
        if c == "\\":
            n = text[j + 1]
            if n == "\n":  # line continuation: skip the newline and leading blanks
                j += 2
                while text[j] in " \t\n":
                    j += 1
                continue
            out.append({"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}.get(n, n))
            j += 2
            continue
        out.append(c)
        j += 1
    return "".join(out), j + 1


def c_string(text, i):
    """Parses adjacent C string literals starting at text[i]; returns (value, end)."""
    out, j = [], i
    while True:
        while text[j] in " \t\n":
            j += 1
        if text[j] != '"':
            return "".join(out), j
        j += 1
        while text[j] != '"':
            if text[j] == "\\":
                out.append({"n": "\n", "t": "\t", "\\": "\\", '"': '"'}.get(text[j + 1], text[j + 1]))
                j += 2
            else:
                out.append(text[j])
                j += 1
        j += 1


def split_args(text, i):
    """Top-level arguments of the call whose '(' is at text[i-1]; strings stay whole."""
    args, depth, start, j = [], 0, i, i
    while j < len(text):
        c = text[j]
        if c == '"' or (c == "r" and re.match(r'r#*"', text[j:j + 3]) and not text[j - 1].isalnum()):
            _, j = rust_string(text, j)
            continue
        if c == "'" and re.match(r"'(\\.|[^\\'])'", text[j:j + 4]):
            j = text.index("'", j + 2) + 1
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                args.append(text[start:j].strip())
                return args
            depth -= 1
        elif c == "," and depth == 0:
            args.append(text[start:j].strip())
            start = j + 1
        j += 1
    return args


def strip_comments(text):
    return "\n".join("" if l.lstrip().startswith("//") else l for l in text.splitlines())


def constants(path, pattern):
    return {m.group(1): int(m.group(2)) for m in re.finditer(pattern, path.read_text())}


def normalise(fmt, conv):
    fmt = fmt.strip()
    if fmt.startswith("isboot: "):
        fmt = fmt[len("isboot: "):]
    if conv == "rust":
        fmt = RUST_ARG.sub(PLACEHOLDER, fmt).replace("{{", "{").replace("}}", "}")
    else:
        fmt = C_CONV.sub(PLACEHOLDER, fmt).replace("%%", "%")
    return fmt.rstrip("\n")


def extract(top):
    """[(file:line, level or None, normalised format)] and every string literal of the sources."""
    msgs, literals = [], []
    kmod_levels = constants(top / "driver/kmod/src/log.rs", r"pub const (\w+): i32 = (\d+);")
    core_levels = {}
    port = (top / "driver/core/src/port.rs").read_text()
    enum = re.search(r"pub enum Level \{(.*?)\}", port, re.S)
    for m in re.finditer(r"(\w+)\s*=\s*(\d+)", enum.group(1)):
        core_levels[m.group(1)] = int(m.group(2))
    # The module may print the session's levels at other levels of its own (log.rs).
    mapping = re.search(r"fn session_level\b.*?\{(.*?)\n\}", (top / "driver/kmod/src/log.rs").read_text(), re.S)
    if mapping:
        for m in re.finditer(r"Level::(\w+)\s*=>\s*(\w+)", mapping.group(1)):
            name, to = m.group(1), m.group(2)
            core_levels[name] = int(to) if to.isdigit() else kmod_levels[to]

    def level_of(expr, table, prefix):
        expr = expr.strip()
        if re.fullmatch(r"\d+", expr):
            return int(expr)
        name = expr.split("::")[-1]
        if expr.replace(" ", "").startswith(prefix) or "::" not in expr:
            return table.get(name)
        return None

    rust_files = [(p, "kmod") for p in sorted((top / "driver/kmod/src").rglob("*.rs"))]
    rust_files += [(p, "core") for p in sorted((top / "driver/core/src").rglob("*.rs"))
                   if not p.name.endswith("_tests.rs") and "tests" not in p.parts]
    for path, kind in rust_files:
        text = strip_comments(path.read_text())
        # String literals for the "does this text exist" check (test modules included: harmless).
        for m in re.finditer(r'(?<![A-Za-z0-9_\'])"', text):
            try:
                value, _ = rust_string(text, m.start())
                literals.append(value)
            except (ValueError, IndexError):
                pass
        macro = r"\bklog!\(" if kind == "kmod" else r"(?<![A-Za-z0-9_])log!\("
        for m in re.finditer(macro, text):
            args = split_args(text, m.end())
            if kind == "core":
                if len(args) < 3:
                    continue
                level_expr, fmt_expr = args[1], args[2]
                level = level_of(level_expr, core_levels, "Level::")
            else:
                if len(args) < 2:
                    continue
                level_expr, fmt_expr = args[0], args[1]
                level = level_of(level_expr, kmod_levels, "crate::log::")
            if not fmt_expr.startswith('"'):
                continue  # the macro's own definition, `$($arg:tt)*`
            fmt, _ = rust_string(fmt_expr, 0)
            line = text.count("\n", 0, m.start()) + 1
            msgs.append((f"{path.relative_to(top)}:{line}", level, normalise(fmt, "rust")))
    for path in sorted((top / "bindings").glob("*.c")):
        text = path.read_text()
        for m in re.finditer(r"\b(printf|log)\s*\(", text):
            j = m.end()
            if m.group(1) == "log":  # log(LOG_LEVEL, "fmt", ...)
                j = text.index(",", j) + 1
            fmt, _ = c_string(text, j)
            if not fmt:
                continue
            literals.append(fmt)
            line = text.count("\n", 0, m.start()) + 1
            msgs.append((f"{path.relative_to(top)}:{line}", 0, normalise(fmt, "c")))
    return msgs, literals


def diagnostics(page):
    """The `.It "..."` entries of the page's DIAGNOSTICS `.Bl -diag` list."""
    entries, section, in_diag = [], None, False
    for n, line in enumerate(page.read_text().splitlines(), 1):
        if line.startswith(".Sh "):
            section = line[4:].strip()
        elif section == "DIAGNOSTICS" and line.startswith(".Bl") and "-diag" in line:
            in_diag = True
        elif in_diag and line.startswith(".El"):
            in_diag = False
        elif in_diag and line.startswith(".It "):
            text = line[4:].strip()
            if text.startswith('"') and text.endswith('"'):
                text = text[1:-1]
            text = text.replace("\\(dq", '"').replace("\\e", "\\").replace("\\&", "")
            entries.append((n, normalise(text, "c")))
    return entries


def pattern(fmt, fills):
    """fmt as a regex over entries whose own conversions are written X: a placeholder stands
    for X, or for one string literal of the source (a message put together from two strings,
    such as "not started: {e}" with e's text, may be documented either way)."""
    slot = "(?:X|" + "|".join(re.escape(f) for f in fills) + ")"
    return re.compile("".join(slot if c == PLACEHOLDER else re.escape(c) for c in fmt), re.S)


def literal(fmt):
    return fmt.replace(PLACEHOLDER, "")


def check(top, page, listing=False):
    msgs, literals = extract(top)
    entries = diagnostics(page)
    problems = []
    if not entries:
        problems.append(f"{page}: no DIAGNOSTICS entries (.Bl -diag with .It lines)")
    # Pure pass-through formats ("{}") say nothing about the text: they match nothing here.
    real = [(where, level, fmt) for where, level, fmt in msgs if literal(fmt).strip(" :;")]
    fills = sorted({normalise(l, "rust").replace(PLACEHOLDER, "X") for l in literals
                    if l.strip() and "\n" not in l}, key=len, reverse=True)
    compiled = [(where, level, fmt, pattern(fmt, fills)) for where, level, fmt in real]
    shown = [(n, entry, entry.replace(PLACEHOLDER, "X")) for n, entry in entries]
    for n, entry, text in shown:
        if not any(pat.fullmatch(text) for _, _, _, pat in compiled):
            problems.append(f"{page.name}:{n}: \"{entry.replace(PLACEHOLDER, '%s')}\" matches no message of the source")
    for where, level, fmt, pat in compiled:
        if level is not None and level > 0:
            continue
        if not any(pat.fullmatch(text) for _, _, text in shown):
            lv = "level 0" if level == 0 else "a level set at run time"
            problems.append(f"{where}: \"{fmt.replace(PLACEHOLDER, '{}')}\" ({lv}) is not in {page.name}'s DIAGNOSTICS")
    if listing:
        for where, level, fmt in msgs:
            print(f"{'?' if level is None else level} {where}: {fmt.replace(PLACEHOLDER, '{}')}")
    return problems, len(msgs), len(entries)


def self_test(top, page):
    """The check must fail on a stale entry and on an undocumented default-level message."""
    import shutil
    import tempfile
    text = page.read_text()
    with tempfile.TemporaryDirectory() as d:
        bogus = pathlib.Path(d) / "stale.4"
        bogus.write_text(text.replace(".Bl -diag\n", '.Bl -diag\n.It "isboot: frobnicated the %s"\nNot a message.\n', 1))
        stale, _, _ = check(top, bogus)
        if not any("frobnicated" in p for p in stale):
            return "a DIAGNOSTICS entry that matches no message was not reported"
        # A copy of the sources with one more level-0 message.
        tree = pathlib.Path(d) / "tree"
        for sub in ["driver/kmod/src", "driver/core/src", "bindings"]:
            shutil.copytree(top / sub, tree / sub)
        mod = tree / "driver/kmod/src/module.rs"
        mod.write_text(mod.read_text() + '\nfn _probe() { klog!(ALWAYS, "an undocumented message {}", 1); }\n')
        missing, _, _ = check(tree, page)
        if not any("an undocumented message" in p for p in missing):
            return "a level-0 message missing from DIAGNOSTICS was not reported"
        # A session note, printed by default once log.rs maps Level::Note to ALWAYS.
        log = tree / "driver/kmod/src/log.rs"
        text = re.sub(r"\npub const fn session_level\b.*?\n\}\n", "\n", log.read_text(), flags=re.S)
        log.write_text(text + "\npub const fn session_level(level: Level) -> i32 {\n"
                       "    match level {\n        Level::Note => ALWAYS,\n        _ => 3,\n    }\n}\n")
        core = tree / "driver/core/src/session/driver.rs"
        core.write_text(core.read_text() + '\nfn _note(log: &dyn Log) { log!(log, Level::Note, "isboot: an undocumented note {}", 1); }\n')
        missing, _, _ = check(tree, page)
        if not any("an undocumented note" in p for p in missing):
            return "a session note printed at the default level but missing from DIAGNOSTICS was not reported"
    return None


def main():
    ap = argparse.ArgumentParser()
    here = pathlib.Path(__file__).resolve().parents[2]
    ap.add_argument("--top", type=pathlib.Path, default=here)
    ap.add_argument("--page", type=pathlib.Path, default=None)
    ap.add_argument("--list", action="store_true", help="print every extracted message")
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    page = a.page or a.top / "contrib/isboot.4"
    if a.self_test:
        err = self_test(a.top, page)
        if err:
            print(f"check-diagnostics: self-test: {err}", file=sys.stderr)
            return 1
        print("check-diagnostics: self-test ok (a stale entry, an undocumented message and an "
              "undocumented default-level session note all fail)")
        return 0
    problems, nmsgs, nentries = check(a.top, page, a.list)
    for p in problems:
        print(f"check-diagnostics: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"check-diagnostics: ok ({nentries} entries, {nmsgs} messages in the source)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
