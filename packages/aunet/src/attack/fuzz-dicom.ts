// Node-only: the DICOM cases of the mutation fuzzer. Each is a small valid CT series (1 to 5
// slices of 2 to 24 pixels a side, any of the four uncompressed transfer syntaxes, stored signed
// or unsigned, in 12 or 16 bits, axial or oblique, files named and ordered at random), then
// damaged: elements of one slice set to extreme or wrong values, removed, given lying lengths or
// VRs; its transfer syntax changed or misstated; the series cut (a slice dropped, doubled, moved,
// a second series mixed in); one file's bytes truncated, flipped, deleted or appended to; and, for
// some cases, the whole series zipped and the zip damaged. fuzz.ts reads it as `predict --input`
// reads a folder (or a zip).

import { zipSync } from 'fflate';
import { Random, type FuzzCase } from './fuzz-case';
import { concat, decimalString, rotated, sliceElements, sliceFile, UID, valueBytes, withElement, type DicomElement, type SeriesSpec } from './dicom-files';
import { sampleHU, sampleLabels } from './hostile';
import { encodeNifti } from '../data/nifti';

/** Every fourth case of a seed is a DICOM one; the others are NIfTI, as before DICOM cases came. */
export const isDicomSlot = (index: number) => index % 4 === 3;

const SYNTAXES = [UID.explicitLittle, UID.explicitLittle, UID.implicitLittle, UID.explicitBig, UID.deflatedExplicitLittle];
/** Transfer syntax UIDs a file may be given instead: compressed ones, retired, unknown, garbage. */
const OTHER_SYNTAXES = [
  UID.explicitLittle, UID.implicitLittle, UID.explicitBig, UID.deflatedExplicitLittle, UID.jpeg2000Lossless, UID.jpegLossless, UID.rleLossless,
  '1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.201', '1.2.840.10008.1.2.1.98', '1.2.3.4', '', 'x'.repeat(70), '1.2.840.10008.1.2.1\0\0',
];

/** The elements a field mutation can reach, with values to give them. */
const FIELDS: { tag: number; name: string; vr: string; values: (r: Random, old: DicomElement | undefined) => DicomElement['value'] }[] = [
  { tag: 0x00280010, name: 'Rows', vr: 'US', values: (r, old) => [r.pick([0, 1, 2, 3, 255, 256, 4096, 32768, 65535, ((old?.value as number[])?.[0] ?? 8) + 1, r.int(65536)])] },
  { tag: 0x00280011, name: 'Columns', vr: 'US', values: (r, old) => [r.pick([0, 1, 2, 65535, 40000, ((old?.value as number[])?.[0] ?? 8) * 2, r.int(65536)])] },
  { tag: 0x00280100, name: 'BitsAllocated', vr: 'US', values: (r) => [r.pick([0, 1, 7, 8, 12, 16, 24, 32, 64, 255, 65535])] },
  { tag: 0x00280101, name: 'BitsStored', vr: 'US', values: (r) => [r.pick([0, 1, 8, 11, 12, 15, 16, 17, 31, 32, 33, 65535])] },
  { tag: 0x00280102, name: 'HighBit', vr: 'US', values: (r) => [r.pick([0, 7, 11, 15, 16, 31, 32, 65535])] },
  { tag: 0x00280103, name: 'PixelRepresentation', vr: 'US', values: (r) => [r.pick([0, 1, 2, 255, 65535])] },
  { tag: 0x00280002, name: 'SamplesPerPixel', vr: 'US', values: (r) => [r.pick([0, 1, 2, 3, 4, 65535])] },
  { tag: 0x00280004, name: 'PhotometricInterpretation', vr: 'CS', values: (r) => r.pick(['MONOCHROME1', 'MONOCHROME2', 'RGB', 'PALETTE COLOR', 'YBR_FULL', '', 'monochrome2']) },
  { tag: 0x00280008, name: 'NumberOfFrames', vr: 'IS', values: (r) => r.pick(['0', '1', '2', '-1', 'abc', '999999999', '', '1.5']) },
  { tag: 0x00280030, name: 'PixelSpacing', vr: 'DS', values: (r) => r.pick(['0\\0', '-1\\1', '1', '1\\1\\1', 'nan\\1', '1e308\\1e308', '1e-300\\1', 'abc\\def', '', '0.5\\0.5', '\\']) },
  { tag: 0x00200032, name: 'ImagePositionPatient', vr: 'DS', values: (r) => r.pick(['', '0\\0', '1e308\\0\\0', 'nan\\0\\0', '0\\0\\0', `0\\0\\${decimalString((r.next() - 0.5) * 20)}`, '1\\2\\3\\4', 'inf\\0\\0']) },
  { tag: 0x00200037, name: 'ImageOrientationPatient', vr: 'DS', values: (r) => r.pick(['0\\0\\0\\0\\0\\0', '1\\0\\0\\1\\0\\0', '1\\0\\0\\0\\1', '1\\0\\0\\0\\0.9\\0.1', 'nan\\0\\0\\0\\1\\0', '0\\1\\0\\1\\0\\0', '1e308\\0\\0\\0\\1\\0', '']) },
  { tag: 0x00281053, name: 'RescaleSlope', vr: 'DS', values: (r) => r.pick(['0', '-1', '1e38', '1e-38', 'nan', 'abc', '', '3.4e38', '-1e30', '2']) },
  { tag: 0x00281052, name: 'RescaleIntercept', vr: 'DS', values: (r) => r.pick(['0', '-1e38', '1e38', 'nan', 'inf', '', '-1024', '1e300']) },
  { tag: 0x00080060, name: 'Modality', vr: 'CS', values: (r) => r.pick(['MR', '', 'CT', 'SR', 'OT']) },
  { tag: 0x00080016, name: 'SOPClassUID', vr: 'UI', values: (r) => r.pick([UID.enhancedCtImageStorage, '1.2.840.10008.5.1.4.1.1.88.22', '1.2.840.10008.1.3.10', '1.2.3', '']) },
  { tag: 0x0020000e, name: 'SeriesInstanceUID', vr: 'UI', values: (r) => r.pick(['2.25.1', '', '2.25.999.1']) },
  { tag: 0x00180050, name: 'SliceThickness', vr: 'DS', values: (r) => r.pick(['0', '-5', 'nan', '1e308', 'abc']) },
];

/** Tags whose removal a mutation picks from. */
const REMOVABLE = [0x00280010, 0x00280011, 0x7fe00010, 0x00200032, 0x00200037, 0x00280030, 0x00280100, 0x0020000e, 0x00080060, 0x00080016, 0x00281053, 0x00280101];

type Files = { name: string; bytes: Uint8Array }[];

/** A valid series: its spec and what it is. */
function baseSeries(r: Random, seed: number, index: number): { spec: SeriesSpec; describe: string } {
  const dims: [number, number, number] = [2 + r.int(23), 2 + r.int(23), 1 + r.int(5)];
  const hu = sampleHU(...dims);
  const rendering = r.pick([
    { what: 'uint16 HU + 1024 in 12 bits', slope: 1, intercept: -1024, signed: false, bitsStored: 12 },
    { what: 'uint16 HU + 1024 in 12 bits, noise above', slope: 1, intercept: -1024, signed: false, bitsStored: 12, highBitsNoise: true },
    { what: 'int16 HU', slope: 1, intercept: 0, signed: true, bitsStored: 16 },
    { what: 'int16 2 x HU, slope 0.5', slope: 0.5, intercept: 0, signed: true, bitsStored: 16 },
  ]);
  const spacing = r.pick([0.5, 1, 2.5, 5]);
  let affine: SeriesSpec['affine'] = [[-0.7, 0, 0, 10], [0, -0.7, 0, -20], [0, 0, spacing, -300]];
  const tilt = r.chance(0.3) ? 5 + r.int(80) : 0;
  if (tilt) affine = rotated(affine, [r.next() - 0.5, r.next() - 0.5, r.next() + 0.1], tilt);
  const transferSyntax = r.pick(SYNTAXES);
  const order = shuffled(r, Array.from({ length: dims[2] }, (_, k) => k));
  const spec: SeriesSpec = {
    dims, hu, affine, seriesUid: `2.25.${seed >>> 0}0${index}`, transferSyntax, ...rendering,
    instanceNumber: (k) => order[k] + 1, fileName: (k) => `IM${(r.int(2 ** 30) + k).toString(36)}`,
  };
  const syntax = { [UID.explicitLittle]: 'explicit LE', [UID.implicitLittle]: 'implicit LE', [UID.explicitBig]: 'explicit BE', [UID.deflatedExplicitLittle]: 'deflated' }[transferSyntax];
  return { spec, describe: `DICOM ${dims.join('x')} ${rendering.what}, ${syntax}, ${spacing} mm apart${tilt ? `, tilted ${tilt} degrees` : ''}` };
}

/** An element of slice `k`: set to an extreme or wrong value, removed, given a lying length or another VR. */
function mutateElements(r: Random, elements: DicomElement[]): { elements: DicomElement[]; what: string } {
  const kind = r.int(10);
  if (kind < 6) {
    const f = r.pick(FIELDS);
    const value = f.values(r, elements.find((e) => e.tag === f.tag));
    return { elements: withElement(elements, f.tag, { vr: f.vr, value }), what: `${f.name} = ${JSON.stringify(typeof value === 'string' ? value.slice(0, 30) : value)}` };
  }
  if (kind < 8) {
    const tag = r.pick(REMOVABLE);
    return { elements: withElement(elements, tag, null), what: `element ${tag.toString(16).padStart(8, '0')} removed` };
  }
  const target = r.pick(elements);
  if (kind < 9) {
    const actual = typeof target.value === 'string' ? target.value.length + (target.value.length % 2) : target.value.length * (target.vr === 'US' ? 2 : 1);
    const length = r.pick([0, 1, 3, 0xffffffff, 0xfffffff0, actual + 2, Math.max(0, actual - 2), r.int(2 ** 32), 0xffff]);
    return { elements: elements.map((e) => (e === target ? { ...e, length } : e)), what: `length of ${target.tag.toString(16).padStart(8, '0')} set to ${length}` };
  }
  // Another VR over the same value bytes (as written with the old VR).
  const vr = r.pick(['UL', 'SQ', 'OB', 'UN', 'XX', 'DS', 'US', 'UT']);
  const value = valueBytes(target, true);
  return { elements: elements.map((e) => (e === target ? { tag: e.tag, vr, value } : e)), what: `VR of ${target.tag.toString(16).padStart(8, '0')} set to ${vr}` };
}

/** The items in an order drawn from `r` (Fisher-Yates). */
function shuffled<T>(r: Random, items: T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Damage to one file's bytes: truncation, flips, deletion, appended junk. */
function mutateBytes(r: Random, bytes: Uint8Array): { bytes: Uint8Array; what: string } {
  const n = bytes.length;
  switch (r.int(4)) {
    case 0: {
      const cut = Math.max(0, Math.min(n - 1, r.pick([r.int(n), 128 + r.int(8), 132 + r.int(200), n - 1 - r.int(16), r.int(140)])));
      return { bytes: bytes.slice(0, cut), what: `truncated to ${cut} of ${n} bytes` };
    }
    case 1: {
      const out = new Uint8Array(bytes);
      const at: number[] = [];
      for (let i = 0, m = 1 + r.int(8); i < m; i++) {
        const p = r.chance(0.7) ? 128 + r.int(Math.min(400, n - 128)) : r.int(n);
        out[p] = r.chance(0.5) ? out[p] ^ (1 << r.int(8)) : r.int(256);
        at.push(p);
      }
      return { bytes: out, what: `bytes changed at ${at.join(', ')}` };
    }
    case 2: {
      const at = 128 + r.int(Math.max(1, n - 129));
      const m = 1 + r.int(Math.min(16, Math.max(1, n - at - 1)));
      return { bytes: concat([bytes.subarray(0, at), bytes.subarray(at + m)]), what: `${m} bytes deleted at ${at}` };
    }
    default: {
      const extra = r.bytes(1 + r.int(64));
      return { bytes: concat([bytes, extra]), what: `${extra.length} random bytes appended` };
    }
  }
}

/**
 * DICOM case `index` of `seed`: a valid series (a folder of files, or sometimes a zip), damaged
 * by 1 to 3 mutations unless `mutate` is false; the role is `image` (predict) or `dataset-image`
 * (train, evaluate: with a valid NIfTI label volume of the series' shape).
 */
export function makeDicomCase(seed: number, index: number, o: { mutate?: boolean } = {}): FuzzCase {
  const r = new Random(seed, index);
  const role = r.pick(['image', 'image', 'dataset-image'] as const);
  const { spec, describe } = baseSeries(r, seed, index);
  const nz = spec.dims[2];
  const elements = Array.from({ length: nz }, (_, k) => sliceElements(spec, k));
  const syntaxes: (string | undefined)[] = Array(nz).fill(undefined);
  const metaSyntaxes: (string | undefined)[] = Array(nz).fill(undefined);
  let files: Files = [];
  const mutations: string[] = [];
  const zipped = r.chance(0.15);
  const write = () => {
    files = elements.map((e, k) => ({ name: spec.fileName!(k), bytes: sliceFile(spec, e, k, { transferSyntax: syntaxes[k], metaSyntax: metaSyntaxes[k] }) }));
  };
  if (o.mutate === false) write();
  else {
    // Structured damage first (elements, syntaxes, the series), then bytes of the written files.
    const count = 1 + r.int(3);
    const byteDamage: number[] = [];
    for (let i = 0; i < count; i++) {
      const kind = r.int(100);
      const k = r.int(elements.length); // slices may have been dropped or added by an earlier mutation
      if (kind < 45) {
        const m = mutateElements(r, elements[k]);
        elements[k] = m.elements;
        mutations.push(`slice ${k}: ${m.what}`);
      } else if (kind < 55) {
        const syntax = r.pick(OTHER_SYNTAXES);
        if (r.chance(0.5)) syntaxes[k] = syntax;
        else metaSyntaxes[k] = syntax;
        mutations.push(`slice ${k}: transfer syntax ${syntaxes[k] === syntax ? 'written as' : 'stated as (data left as they were)'} ${JSON.stringify(syntax.slice(0, 30))}`);
      } else if (kind < 70) {
        const what = r.int(4);
        if (what === 0 && elements.length > 1) { // a series keeps one slice at least
          elements.splice(k, 1);
          syntaxes.splice(k, 1);
          metaSyntaxes.splice(k, 1);
          mutations.push(`slice ${k} dropped`);
        } else if (what === 1) {
          elements.push(elements[k]);
          syntaxes.push(syntaxes[k]);
          metaSyntaxes.push(metaSyntaxes[k]);
          mutations.push(`slice ${k} twice`);
        } else if (what === 2) {
          const shift = r.pick([0.3, 1, -1, 2.5, 7, 100]);
          const axis = r.int(3);
          elements[k] = elements[k].map((e) => (e.tag === 0x00200032 ? { ...e, value: String(e.value).split('\\').map((v, i) => decimalString(Number(v) + (i === axis ? shift : 0))).join('\\') } : e));
          mutations.push(`slice ${k} moved ${shift} mm along ${'xyz'[axis]}`);
        } else {
          const other = sliceElements({ ...spec, seriesUid: `${spec.seriesUid}.9`, description: 'other' }, 0);
          elements.push(other);
          syntaxes.push(undefined);
          metaSyntaxes.push(undefined);
          mutations.push('a slice of a second series added');
        }
      } else byteDamage.push(r.int(1 << 20));
    }
    write();
    for (const pick of byteDamage) {
      const k = pick % files.length;
      const m = mutateBytes(r, files[k].bytes);
      files[k] = { ...files[k], bytes: m.bytes };
      mutations.push(`file ${files[k].name}: ${m.what}`);
    }
  }
  files = shuffled(r, files);
  const folder = `fuzz-s${seed}-${index}-dicom`;
  let zip: Uint8Array | undefined;
  let bytes = files[0]?.bytes ?? new Uint8Array(0);
  if (zipped) {
    zip = zipSync(Object.fromEntries(files.map((f) => [`series/${f.name}`, f.bytes])), { level: r.pick([0, 6]) });
    if (o.mutate !== false && r.chance(0.5)) {
      const m = mutateBytes(r, zip);
      zip = m.bytes;
      mutations.push(`zip: ${m.what}`);
    }
    bytes = zip;
  }
  const name = zipped ? `${folder}.zip` : folder;
  let partner: FuzzCase['partner'];
  if (role === 'dataset-image') {
    partner = { name: `fuzz-s${seed}-${index}-mask.nii`, bytes: encodeNifti({ dims: spec.dims, data: sampleLabels(...spec.dims).map((v, i) => (i === 0 ? 1 : v)), datatype: 'uint8' }) };
  }
  return { seed, index, name, role, base: `${describe}${zipped ? ', zipped' : ''}`, mutations, bytes, partner, dicom: { files, zip } };
}
