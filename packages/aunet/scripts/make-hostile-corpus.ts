// Writes the hostile NIfTI corpus (src/attack/hostile.ts) into a folder, with an index of what
// each file is and what the loaders must do with it:
//
//   cd packages/aunet && node --import tsx scripts/make-hostile-corpus.ts OUT_DIR
//
// OUT_DIR gets one file per case (.nii, or .nii.gz where the case is about gzip), index.json
// ([{ name, role, expect, what, bytes }]) and README.md (the same as a table). Every file is
// made here from small volumes written by encodeNifti and broken byte by byte: nothing is
// downloaded. Try them with the commands, e.g.
//   pnpm --filter aunet predict --checkpoint runs/mine/best.safetensors --input OUT_DIR/absurd-dims.nii
// ('ok' files load; 'error' files stop with exit code 1 and one line naming the file).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { hostileCorpus } from '../src/attack/hostile';

const out = process.argv[2];
if (!out || out === '--help' || out === '-h' || process.argv.length > 3) {
  (out === '--help' || out === '-h' ? console.log : console.error)('usage: node --import tsx scripts/make-hostile-corpus.ts OUT_DIR');
  process.exit(out === '--help' || out === '-h' ? 0 : 2);
}

const dir = resolve(out);
mkdirSync(dir, { recursive: true });
const corpus = hostileCorpus();
for (const c of corpus) writeFileSync(join(dir, c.name), c.bytes);
const index = corpus.map((c) => ({ name: c.name, role: c.role, expect: c.expect, what: c.what, bytes: c.bytes.length }));
writeFileSync(join(dir, 'index.json'), JSON.stringify(index, null, 2) + '\n');
const cell = (s: string) => s.replace(/\|/g, '\\|');
writeFileSync(
  join(dir, 'README.md'),
  [
    '# Hostile NIfTI corpus',
    '',
    'Made by `packages/aunet/scripts/make-hostile-corpus.ts` from `src/attack/hostile.ts`: small valid volumes (16 x 12 x 3,',
    'int16 Hounsfield units, or uint8 labels) broken byte by byte. `expect`: `ok` loads with the right values;',
    '`error` stops train, evaluate and predict with one line naming the file (exit code 1). `role`: used as an',
    'image (normalised to 0..1) or as a label mask.',
    '',
    '| file | role | expect | bytes | what |',
    '| --- | --- | --- | ---: | --- |',
    ...index.map((c) => `| \`${c.name}\` | ${c.role} | ${c.expect} | ${c.bytes} | ${cell(c.what)} |`),
    '',
  ].join('\n'),
);
console.log(`${corpus.length} files (${corpus.filter((c) => c.expect === 'ok').length} that load, ${corpus.filter((c) => c.expect === 'error').length} that must be refused) in ${dir}, with index.json and README.md`);
