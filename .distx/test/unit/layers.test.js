/**
 * The layer order of docs/architecture.md, enforced: every import in src/ and sandbox/ is parsed (static,
 * re-exports and dynamic `import()`), and one pointing against the order fails, naming the file, the line
 * and the rule. A layer may import the layers below it, never one above, never a peer of its own rank:
 *
 *   cli  →  audit · tunnel · auth  →  secrets · config  →  errors.ts · io.ts · net.ts
 *
 * sandbox/ (the reference control plane) imports from src/ types only; src/ never imports sandbox/.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** Rank of each layer: higher may import lower. Layers of the same rank are peers. */
const RANK = {
    cli: 3,
    audit: 2,
    tunnel: 2,
    auth: 2,
    secrets: 1,
    config: 1,
    base: 0,
};
/**
 * Known, reasoned exceptions (from → to). Keep this short; each needs its why.
 * - io.ts declares Deps, whose keychain() returns the secrets layer's API: a type, erased at build.
 */
const ALLOWED = [
    { from: 'src/io.ts', to: 'src/secrets/keychain.ts', typeOnly: true },
];
function layerOf(file) {
    const m = file.match(/^src\/([^/]+)\//);
    if (m)
        return m[1];
    if (/^src\/[^/]+\.ts$/.test(file))
        return 'base';
    return undefined;
}
function walk(dir) {
    return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
        const path = `${dir}/${e.name}`;
        if (e.isDirectory())
            return walk(path);
        return e.name.endsWith('.ts') ? [path] : [];
    });
}
/** Every relative import of a file: `import … from`, `export … from`, `import('…')`. */
export function importsOf(file, text) {
    const found = [];
    const re = /(?:^|\n)\s*(import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s+)?['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g;
    for (const m of text.matchAll(re)) {
        const spec = m[3] ?? m[4];
        if (!spec)
            continue;
        const at = (m.index ?? 0) + (m[0].startsWith('\n') ? 1 : 0);
        const line = text.slice(0, at).split('\n').length;
        // `import { type A, type B }` is as type-only as `import type`; anything else loads code.
        const braces = m[0].match(/^\s*(?:import|export)\s+\{([^}]*)\}/)?.[1];
        const allTypes = braces
            ?.split(',')
            .map((s) => s.trim())
            .filter(Boolean)
            .every((s) => s.startsWith('type ')) === true;
        const target = relative(ROOT, resolve(ROOT, dirname(file), spec)).replace(/\.js$/, '.ts');
        found.push({ file, line, target, typeOnly: Boolean(m[2]) || allTypes });
    }
    return found;
}
function violation(i) {
    const allowed = ALLOWED.some((a) => a.from === i.file && a.to === i.target && (!a.typeOnly || i.typeOnly));
    if (allowed)
        return undefined;
    if (i.file.startsWith('sandbox/')) {
        if (i.target.startsWith('src/') && !i.typeOnly)
            return 'sandbox/ imports only types from src/';
        return undefined;
    }
    if (i.target.startsWith('sandbox/'))
        return 'src/ never imports sandbox/';
    const from = layerOf(i.file);
    const to = layerOf(i.target);
    if (!from || !to || from === to)
        return undefined;
    const rf = RANK[from];
    const rt = RANK[to];
    if (rf === undefined)
        return `src/${from}/ is no layer of docs/architecture.md`;
    if (rt === undefined)
        return `src/${to}/ is no layer of docs/architecture.md`;
    if (rt > rf)
        return `${from} is below ${to}: it may not import it`;
    if (rt === rf && from !== 'base')
        return `${from} and ${to} are peers: neither imports the other`;
    return undefined;
}
const files = [...walk('src'), ...walk('sandbox')];
test('the import scanner sees static, re-export, type-only and dynamic imports', () => {
    const text = [
        "import { a } from '../auth/x.js';",
        "import type { B } from '../cli/y.js';",
        "import { type C, type D } from '../cli/z.js';",
        "export { e } from './w.js';",
        "  const { f } = await import('../tunnel/v.js');",
    ].join('\n');
    assert.deepEqual(importsOf('src/config/t.ts', text).map((i) => [i.line, i.target, i.typeOnly]), [
        [1, 'src/auth/x.ts', false],
        [2, 'src/cli/y.ts', true],
        [3, 'src/cli/z.ts', true],
        [4, 'src/config/w.ts', false],
        [5, 'src/tunnel/v.ts', false],
    ]);
});
test('every layer of src/ is named in the layer order', () => {
    const layers = new Set(files.filter((f) => f.startsWith('src/')).map((f) => layerOf(f) ?? f));
    for (const l of layers)
        assert.ok(l in RANK, `src/${l}/ has no place in the layer order`);
});
for (const file of files) {
    test(`imports of ${file} follow the layer order`, () => {
        const bad = importsOf(file, readFileSync(join(ROOT, file), 'utf8'))
            .map((i) => ({ i, why: violation(i) }))
            .filter((v) => v.why !== undefined)
            .map((v) => `${v.i.file}:${v.i.line} imports ${v.i.target}: ${v.why}`);
        assert.deepEqual(bad, []);
    });
}
