// Writes the hostile corpus (NIfTI files: src/attack/hostile.ts; DICOM series, as folders of
// slice files or single zips and slices: src/attack/hostile-dicom.ts) into a folder, with an
// index of what each is and what the loaders must do with it:
//
//   cd packages/aunet && node --import tsx scripts/make-hostile-corpus.ts OUT_DIR
//
// OUT_DIR gets one file per NIfTI case (.nii, or .nii.gz where the case is about gzip), one
// folder (or .zip / .dcm file) per DICOM case, index.json ([{ name, role, expect, what, bytes }],
// with `files` for a folder) and README.md (the same as a table). Every file is made here from
// small volumes written by encodeNifti and this package's DICOM writer and broken byte by byte:
// nothing is downloaded. Try them with the commands, e.g.
//   pnpm --filter aunet predict --checkpoint runs/mine/best.safetensors --input OUT_DIR/absurd-dims.nii
//   pnpm --filter aunet predict --checkpoint runs/mine/best.safetensors --input OUT_DIR/dicom-missing-slice
// ('ok' files load; 'error' files stop with exit code 1 and one line naming the file).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { hostileCorpus } from '../src/attack/hostile';
import { hostileDicomCorpus } from '../src/attack/hostile-dicom';

const out = process.argv[2];
if (!out || out === '--help' || out === '-h' || process.argv.length > 3) {
  (out === '--help' || out === '-h' ? console.log : console.error)('usage: node --import tsx scripts/make-hostile-corpus.ts OUT_DIR');
  process.exit(out === '--help' || out === '-h' ? 0 : 2);
}

const dir = resolve(out);
mkdirSync(dir, { recursive: true });
const corpus = hostileCorpus();
for (const c of corpus) writeFileSync(join(dir, c.name), c.bytes);
const dicom = hostileDicomCorpus();
for (const c of dicom) {
  if (c.files) {
    mkdirSync(join(dir, c.name), { recursive: true });
    for (const f of c.files) writeFileSync(join(dir, c.name, f.name), f.bytes);
  } else writeFileSync(join(dir, c.name), c.bytes!);
}
const index = [
  ...corpus.map((c) => ({ name: c.name, role: c.role, expect: c.expect, what: c.what, bytes: c.bytes.length })),
  ...dicom.map((c) => ({
    name: c.files ? `${c.name}/` : c.name, role: 'image' as const, expect: c.expect, what: c.what,
    bytes: c.files ? c.files.reduce((n, f) => n + f.bytes.length, 0) : c.bytes!.length, ...(c.files && { files: c.files.length }),
  })),
];
writeFileSync(join(dir, 'index.json'), JSON.stringify(index, null, 2) + '\n');
const cell = (s: string) => s.replace(/\|/g, '\\|');
writeFileSync(
  join(dir, 'README.md'),
  [
    '# Hostile NIfTI and DICOM corpus',
    '',
    'Made by `packages/aunet/scripts/make-hostile-corpus.ts` from `src/attack/hostile.ts` and `src/attack/hostile-dicom.ts`: small',
    'valid volumes (16 x 12 x 3, int16 Hounsfield units, or uint8 labels) and CT series (folders ending in `/`, zips, a lone slice)',
    'broken byte by byte or element by element. `expect`: `ok` loads with the right values;',
    '`error` stops train, evaluate and predict with one line naming the file (exit code 1). `role`: used as an',
    'image (normalised to 0..1) or as a label mask.',
    '',
    '| file | role | expect | bytes | what |',
    '| --- | --- | --- | ---: | --- |',
    ...index.map((c) => `| \`${c.name}\` | ${c.role} | ${c.expect} | ${c.bytes} | ${cell(c.what)} |`),
    '',
  ].join('\n'),
);
const count = (expect: string) => index.filter((c) => c.expect === expect).length;
console.log(`${corpus.length} NIfTI files and ${dicom.length} DICOM series (${count('ok')} that load, ${count('error')} that must be refused) in ${dir}, with index.json and README.md`);
