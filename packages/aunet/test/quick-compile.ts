// Imported first by the tests whose time on a fresh machine (an empty shader cache) went mostly
// to compiling kernels on small inputs: lavapipe (Mesa's Vulkan on the CPU, this project's test
// machine) compiles their shaders without LLVM's optimisation passes (GALLIVM_PERF=nopt), in this
// process, in the commands it starts and in the Chromium it launches (all inherit the variable).
// What the tests check is the same: the same WGSL, run and compared as before. Mesa keys its
// shader cache by these flags, so the optimised shaders of other programs (training, benchmarks)
// are neither reused nor replaced. Not for tests whose time goes to running a network (train,
// chaos): unoptimised kernels run slower (train.test.ts took 137 s instead of 81 on an empty
// cache). Read when the device is created, after the imports; other drivers ignore it; a caller's
// GALLIVM_PERF wins (GALLIVM_PERF= runs on optimised shaders). packages/tensor/test/quick-compile.ts
// does the same for the kernel tests there.
process.env.GALLIVM_PERF ??= 'nopt';
