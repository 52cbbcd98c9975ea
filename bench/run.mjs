// `npm run bench -- <name> [...]`: runs bench/<name>.mjs against the built SDK and prints
// its figures. Never part of `npm test`.
import { readdirSync } from 'node:fs';
import { createRuntime } from '../dist/edgetune.js';

const all = readdirSync(new URL('.', import.meta.url)).filter((f) => f.endsWith('.mjs') && f !== 'run.mjs' && !f.startsWith('_')).map((f) => f.slice(0, -4));
// `npm run bench -- <name> [<name> ...] [args]`: leading names are benches, the rest their arguments.
const argv = process.argv.slice(2);
let split = 0;
while (split < argv.length && all.includes(argv[split])) split++;
const names = split === 0 ? argv.slice(0, 1) : argv.slice(0, split);
const benchArgs = argv.slice(Math.max(1, split));
if (names.length === 0) {
  console.log(`usage: npm run bench -- <${all.join('|')}> [...]`);
  process.exit(2);
}
const rt = await createRuntime();
const a = rt.adapter;
console.log(`adapter: ${a.vendor || '?'} / ${a.architecture || '?'} (${a.description || a.device || 'no description'})${a.software ? ' [software]' : ''}`);
for (const name of names) {
  if (!all.includes(name)) {
    console.error(`unknown bench '${name}'; have: ${all.join(', ')}`);
    process.exit(2);
  }
  const mod = await import(`./${name}.mjs`);
  console.log(`\n== ${name} ==`);
  await mod.default(rt, benchArgs);
}
rt.destroy();
process.exit(0);
