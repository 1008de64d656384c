#!/usr/bin/env python3
"""Prints the import graph among a crate's top-level modules (`crate::module` paths
outside comments and unit-test modules) and exits 1 on a cycle.

Usage: module_graph.py CRATE/src"""
import os, re, sys
src = sys.argv[1]
mods = {}
for root, _, files in os.walk(src):
    for f in files:
        if not f.endswith('.rs'): continue
        p = os.path.join(root, f)
        rel = os.path.relpath(p, src)
        top = rel.split(os.sep)[0].removesuffix('.rs')
        if top in ('lib', 'main', 'mod'): continue
        mods.setdefault(top, set())
        text = open(p).read()
        text = re.sub(r'#\[cfg\(test\)\]\s*mod tests \{.*', '', text, flags=re.S)
        text = re.sub(r'^\s*//.*$', '', text, flags=re.M)
        for m in re.finditer(r'crate::(\{[^}]*\}|[a-z_]+)', text):
            g = m.group(1)
            names = re.findall(r'\b([a-z_]+)\b', g) if g.startswith('{') else [g]
            for n in names:
                if n != top and n != 'self':
                    mods[top].add(n)
for k in mods: mods[k] &= set(mods)
for k in sorted(mods): print(f"{k} -> {', '.join(sorted(mods[k])) or '(none)'}")
# cycles
state = {}
def dfs(n, stack):
    state[n] = 1
    for m in sorted(mods[n]):
        if state.get(m) == 1:
            path = stack + [n]
            print("CYCLE:", " -> ".join(path[path.index(m):] + [m]))
            return True
        if not state.get(m) and dfs(m, stack + [n]):
            return True
    state[n] = 2
    return False
bad = any(dfs(n, []) for n in sorted(mods) if not state.get(n))
sys.exit(1 if bad else 0)
