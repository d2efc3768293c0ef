// Imported first by the tests that run a network: conv2d's small 'gpu' kernel variant, which
// compiles in a fraction of the default 'fallback' variant's time on lavapipe (as the aunet
// package's tests do; see packages/aunet/test/conv-variant.ts). A caller's AUNET_CONV2D_VARIANT wins.
process.env.AUNET_CONV2D_VARIANT ??= 'gpu';
