// Imported first by the kernel tests that compile many kernels on small shapes: lavapipe (Mesa's
// Vulkan on the CPU, this project's test machine) compiles their shaders without LLVM's
// optimisation passes (GALLIVM_PERF=nopt). On an empty shader cache (a fresh machine or CI)
// compiling dominated these files, the fallback conv2d kernels taking 5-40 s each; unoptimised,
// conv2d.test.ts took 49 s instead of 127 s (2 cores, same seed). What the tests check is the same:
// the same WGSL, run and compared with the float64 reference. Mesa keys its shader cache by these
// flags, so the optimised shaders of other programs (training, benchmarks) are neither reused nor
// replaced. Read when the device is created, after the imports; other drivers ignore it; a
// caller's GALLIVM_PERF wins (GALLIVM_PERF= runs these tests on optimised shaders).
process.env.GALLIVM_PERF ??= 'nopt';
