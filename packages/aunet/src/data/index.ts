// The browser-safe part of the data pipeline; files.ts (Node only) is imported on its own.
export { DataError } from './errors';
export { parseNifti, encodeNifti, defaultSpace, isGzip, toSliceStack, fromSliceStack, type Volume, type NiftiImage, type NiftiSpace, type NiftiDatatype } from './nifti';
export { normaliseImage, detectIntensity, binaryMask, LUNG_WINDOW_HU, HU_MINIMUM_BELOW, type IntensityKind, type NormalisedImage } from './normalise';
export { resizeBilinear, resizeArea, resizeImage, resizeNearest, augmentPair, FULL_AUGMENT, BASIC_AUGMENT, type AugmentOptions } from './transforms';
export {
  splitSlices, splitCases, parseFold, parseSplitFile, splitFromFile, splitRecord,
  type Split, type SplitOptions, type CaseRange, type SplitItem, type SplitLists, type GivenSplit, type SplitRecord,
} from './split';
export { buildDataset, joinCases, resizeDataset, type SliceDataset, type CaseSlices } from './dataset';
export { volumeFromDicom, dicomFilesFromZip, dicomSeriesLine, isDicom, isZip, transferSyntaxName, TRANSFER_SYNTAXES, PICK_SERIES_FLAG, type DicomInput, type DicomSeriesInfo, type DicomSeriesOptions } from './dicom';
export { voxelToWorld, worldOf, spaceFromAffine, invertAffine, voxelCorrespondence, affineDifference, type Affine } from './space';
