export * from './creation';
export * from './elementwise';
export * from './reduce';
export * from './shape';
export * from './matmul';
export * from './conv2d';
export * from './upsample';
export * from './instancenorm';
export * from './attention';
export * from './losses';
export * from './adam';
export { broadcastShapes } from './broadcast';
export type { BinaryOp } from './primitives';

