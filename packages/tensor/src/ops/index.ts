import { setAutogradPrimitives } from '../autograd';
import { copy, onesLike } from './creation';
import { add } from './elementwise';

export * from './creation';
export * from './elementwise';
export * from './reduce';
export * from './shape';
export * from './matmul';
export { broadcastShapes } from './broadcast';

setAutogradPrimitives({ add, onesLike, copy });
