#!/usr/bin/env python3
"""Builds one mutant of the library: copies of the headers a mutant changes, with its changes.

usage: mutate.py MUTANT_FILE INCLUDE_DIR OUT_DIR STAMP DEPFILE

A mutant file (tests/sim/mutants/*.mutant) holds comment lines (#) and hunks:

    === raft/core/rules.hpp          the header to change (relative to INCLUDE_DIR)
    --- find                         text that must occur exactly once in it...
    <lines>
    +++ replace                      ...and what replaces it
    <lines>

The changed headers are written under OUT_DIR with the same relative paths. A build that puts
OUT_DIR ahead of INCLUDE_DIR for quoted includes (-iquote OUT_DIR) compiles the mutant, while the
library's own headers carry no trace of it. When the library's code changes so that a hunk no
longer applies, this fails and names the hunk: the mutant must be brought up to date.
"""
import os
import sys


def parse(path):
    """The hunks of a mutant file: (header, text to find, replacement). Comments only come
    before the first hunk; a hunk's text runs to the next marker line or the end of the file."""
    hunks, header, part, find, repl = [], None, None, [], []

    def close():
        if part == 'find':
            sys.exit(f'{path}: a hunk of {header} has no "+++ replace" part')
        if part == 'replace':
            hunks.append((header, block(find), block(repl)))

    with open(path, encoding='utf-8') as f:
        for line in f.read().splitlines():
            if line.startswith('=== '):
                close()
                header, part = line[4:].strip(), None
            elif line == '--- find':
                if header is None:
                    sys.exit(f'{path}: "--- find" before any "=== header" line')
                close()
                part, find, repl = 'find', [], []
            elif line == '+++ replace':
                if part != 'find':
                    sys.exit(f'{path}: "+++ replace" without a "--- find" before it')
                part = 'replace'
            elif part == 'find':
                find.append(line)
            elif part == 'replace':
                repl.append(line)
            elif line.strip() and not line.startswith('#'):
                sys.exit(f'{path}: unexpected line: {line}')
    close()
    if not hunks:
        sys.exit(f'{path}: no hunks')
    return hunks


def block(lines):
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return '\n'.join(lines) + '\n'


def main():
    mutant, include_dir, out_dir, stamp, depfile = sys.argv[1:6]
    texts, sources = {}, []
    for header, find, repl in parse(mutant):
        if header not in texts:
            source = os.path.join(include_dir, header)
            sources.append(source)
            with open(source, encoding='utf-8') as f:
                texts[header] = f.read()
        n = texts[header].count(find)
        if n != 1:
            sys.exit(f'{mutant}: the text to replace occurs {n} times in {header} (must be once): the '
                     f'code changed; update the mutant. The text:\n{find}')
        texts[header] = texts[header].replace(find, repl)
    for header, text in texts.items():
        out = os.path.join(out_dir, header)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, 'w', encoding='utf-8') as f:
            f.write(text)
    name = os.path.splitext(os.path.basename(mutant))[0]
    with open(stamp, 'w', encoding='utf-8') as f:
        f.write(f'// mutant {name}: changed ' + ', '.join(texts) + '\n')
    with open(depfile, 'w', encoding='utf-8') as f:
        f.write(stamp.replace(' ', '\\ ') + ': ' + ' '.join(s.replace(' ', '\\ ') for s in sources) + '\n')


if __name__ == '__main__':
    main()
