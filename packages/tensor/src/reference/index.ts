// The float64 reference implementation, used as the oracle by the tests.
export * from './core';
export * from './conv';
export * from './nnops';
