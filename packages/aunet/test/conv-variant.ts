// Imported first by this package's tests that run the network: conv2d's small 'gpu' kernel
// variant for them and for the commands they start (AUNET_CONV2D_VARIANT is inherited). On
// lavapipe each new kernel of the default 'fallback' variant takes 5-50 s to compile on a fresh
// machine, and these tests use tiny networks of many shapes, so compiling dominated the test run;
// what they check (the network against its float64 reference, the trainer, the run folder, the
// commands, prediction) does not depend on the variant. Both variants' kernels are checked
// against the reference in @aunet/tensor's conv2d.test.ts and torch.test.ts. A caller's
// AUNET_CONV2D_VARIANT (e.g. `fallback`) wins.
process.env.AUNET_CONV2D_VARIANT ??= 'gpu';
