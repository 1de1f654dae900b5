package dev.panamoe.runtime.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.panamoe.bindings.CpuIsa;
import dev.panamoe.bindings.CudaRuntime;
import dev.panamoe.bindings.panamoe_h;
import dev.panamoe.ops.DType;
import org.junit.jupiter.api.Test;

/** fp32 / bf16 / auto: parsing, and auto resolved from a CPU's kernel level and a CUDA device's compute capability. */
class PrecisionTest {
    private static final int AVX2 = panamoe_h.PMOE_CPU_AVX2_FMA();
    private static final int AVX512 = AVX2 | panamoe_h.PMOE_CPU_AVX512();
    private static final int AVX512_BF16 = AVX512 | panamoe_h.PMOE_CPU_AVX512_BF16();

    @Test
    void parsesTheThreeNamesAndNamesTheArgumentOtherwise() {
        assertEquals(Precision.FP32, Precision.parse("--precision", "fp32"));
        assertEquals(Precision.BF16, Precision.parse("--precision", "BF16"));
        assertEquals(Precision.AUTO, Precision.parse("--precision", " auto "));
        var bad = assertThrows(IllegalArgumentException.class, () -> Precision.parse("--precision", "fp16"));
        assertEquals("--precision: expected fp32, bf16 or auto, got \"fp16\"", bad.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Precision.parse("--precision", null));
        assertThrows(IllegalArgumentException.class, () -> new Precision.Resolved(Precision.AUTO, "x"));
    }

    @Test
    void autoOnTheCpuIsBf16OnlyAtTheAvx512Bf16Level() {
        Precision.Resolved native16 = Precision.AUTO.resolveCpu(new CpuIsa(panamoe_h.PMOE_ISA_AVX512_BF16(), AVX512_BF16));
        assertEquals(Precision.BF16, native16.precision());
        assertEquals(DType.BF16, native16.dtype());
        assertEquals("bf16 (auto: the CPU kernels use avx512_bf16)", native16.toString());

        Precision.Resolved noBf16 = Precision.AUTO.resolveCpu(new CpuIsa(panamoe_h.PMOE_ISA_AVX512(), AVX512));
        assertEquals(DType.F32, noBf16.dtype());
        assertEquals("fp32 (auto: the CPU kernels use avx512, the CPU has no AVX512_BF16, so bf16 would be emulated)",
                noBf16.toString());

        Precision.Resolved lowered = Precision.AUTO.resolveCpu(new CpuIsa(panamoe_h.PMOE_ISA_AVX2(), AVX512_BF16));
        assertEquals(Precision.FP32, lowered.precision());
        assertEquals("auto: the CPU kernels use avx2 (lowered from avx512_bf16 by PMOE_CPU_ISA / -Dpanamoe.cpu.isa), "
                + "so bf16 would be emulated", lowered.reason());
    }

    @Test
    void autoOnCudaIsBf16FromComputeCapability8() {
        assertEquals("bf16 (auto: cuda:1 has bf16 tensor cores (compute capability 9.0))",
                Precision.AUTO.resolveCuda(device(1, 9, 0)).toString());
        assertEquals(Precision.BF16, Precision.AUTO.resolveCuda(device(0, 8, 0)).precision());
        assertEquals("fp32 (auto: cuda:0 has no bf16 tensor cores (compute capability 7.5, they need 8.0))",
                Precision.AUTO.resolveCuda(device(0, 7, 5)).toString());
    }

    @Test
    void anExplicitPrecisionIsKeptOnEveryDevice() {
        for (Precision p : new Precision[] {Precision.FP32, Precision.BF16}) {
            assertEquals(new Precision.Resolved(p, "requested"), p.resolveCpu(new CpuIsa(panamoe_h.PMOE_ISA_AVX2(), AVX2)));
            assertEquals(new Precision.Resolved(p, "requested"), p.resolveCuda(device(0, 9, 0)));
            assertEquals(new Precision.Resolved(p, "requested"), p.resolve(dev.panamoe.ops.Device.CPU));
        }
    }

    private static CudaRuntime.DeviceProperties device(int index, int major, int minor) {
        return new CudaRuntime.DeviceProperties(index, "test device", 1L << 30, 100, major, minor);
    }
}
