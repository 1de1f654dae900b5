package dev.panamoe.runtime.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.bindings.CpuIsa;
import dev.panamoe.bindings.CudaRuntime;
import dev.panamoe.bindings.NativeLibraryUnavailableException;
import dev.panamoe.bindings.panamoe_h;
import dev.panamoe.runtime.comm.NcclCommunicator;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * {@code train --device}: a bad value is a usage error; a device that cannot be used is a
 * one-line error with cudart's reason; {@code doctor} lists the devices or that reason.
 */
class TrainDeviceTest {
    private static final CudaRuntime.Devices DEVICES = CudaRuntime.probe();

    @Test
    void anUnknownDeviceIsAUsageError() {
        TrainCommandTest.Result r = TrainCommandTest.run("train", "--device", "gpu");
        assertEquals(2, r.code(), r.err());
        assertEquals("panamoe train: Invalid value for option '--device': expected cpu, cuda or cuda:N, got 'gpu'"
                + " (see 'panamoe train --help')", r.err().strip());
    }

    @Test
    void withoutAGpuCudaEndsWithCudartsReason() {
        Assumptions.assumeFalse(DEVICES.available(), () -> "this machine has " + DEVICES.count() + " CUDA device(s)");
        for (String device : new String[] {"cuda", "cuda:1"}) {
            TrainCommandTest.Result r = TrainCommandTest.run("train", "--device", device, "--steps", "1");
            assertEquals(1, r.code(), r.err());
            String err = r.err().strip();
            assertFalse(err.contains("\n") || err.contains("Exception") || err.contains("\tat "), "one line: " + err);
            assertEquals("panamoe train: --device " + device + ": no usable CUDA device: " + DEVICES.reason(), err);
            assertEquals("", r.out(), "nothing trained");
        }
    }

    @Test
    void doctorListsTheDevicesOrWhyThereAreNone() {
        TrainCommandTest.Result r = TrainCommandTest.run("doctor");
        assertEquals(0, r.code(), r.err());
        String cuda = r.lines().stream().filter(l -> l.startsWith("CUDA:")).findFirst().orElseThrow();
        if (DEVICES.available()) {
            assertTrue(cuda.endsWith(DEVICES.count() + " device(s)"), cuda);
            assertTrue(r.out().contains("cuda:0 ") && r.out().contains("compute capability"), r.out());
        } else {
            assertTrue(cuda.endsWith(DEVICES.reason()), cuda); // cudart's reason, or the loader's
        }
    }

    /** doctor names the CPU's features and the level the CPU kernels use, as the library reports them. */
    @Test
    void doctorNamesTheCpuFeaturesAndTheKernelLevel() {
        TrainCommandTest.Result r = TrainCommandTest.run("doctor");
        assertEquals(0, r.code(), r.err());
        CpuIsa isa = CpuIsa.query(panamoe_h.cpu());
        String line = r.lines().stream().filter(l -> l.startsWith("CPU ISA:")).findFirst().orElseThrow();
        assertTrue(line.contains("features " + isa.featureNames() + "; kernels use " + isa.levelName()), line);
    }

    /** doctor says what auto precision picks on the CPU: bf16 exactly when the CPU kernels run at avx512_bf16. */
    @Test
    void doctorSaysWhatAutoPrecisionPicks() {
        TrainCommandTest.Result r = TrainCommandTest.run("doctor");
        assertEquals(0, r.code(), r.err());
        boolean bf16 = CpuIsa.query(panamoe_h.cpu()).level() >= panamoe_h.PMOE_ISA_AVX512_BF16();
        String line = r.lines().stream().filter(l -> l.startsWith("precision:")).findFirst().orElseThrow();
        assertTrue(line.startsWith("precision:   auto picks " + (bf16 ? "bf16 (auto: the CPU kernels use avx512_bf16)"
                : "fp32 (auto: the CPU kernels use ")), line);
        assertTrue(line.contains(") on the CPU"), line);
    }

    /** doctor finds NCCL as the NCCL communicator does and says why not without repeating "libnccl.so.2 unavailable". */
    @Test
    void doctorFindsNcclLikeTheCommunicator() {
        TrainCommandTest.Result r = TrainCommandTest.run("doctor");
        assertEquals(0, r.code(), r.err());
        String nccl = r.lines().stream().filter(l -> l.startsWith("NCCL:")).findFirst().orElseThrow();
        String reason = null;
        try {
            NcclCommunicator.library();
        } catch (NativeLibraryUnavailableException e) {
            reason = e.getMessage();
        }
        if (reason == null) {
            assertTrue(nccl.matches("NCCL: +2\\.\\d+\\.\\d+ \\(.*libnccl.*\\)"), nccl);
        } else {
            assertTrue(nccl.matches("NCCL: +unavailable: .*"), nccl);
            assertTrue(nccl.endsWith(reason.substring(reason.indexOf("unavailable: ") + "unavailable: ".length())), nccl);
        }
        assertFalse(r.out().contains("libnccl.so.2 unavailable"), r.out());
    }

    @Tag("gpu")
    @Test
    void trainsOnTheGpu() {
        Assumptions.assumeTrue(DEVICES.available(), () -> "no usable CUDA device: " + DEVICES.reason());
        TrainCommandTest.Result r = TrainCommandTest.run("train", "--device", "cuda:0", "--steps", "3", "--batch", "2",
                "--seq", "16", "--eval-every", "3", "--eval-batches", "1");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("on cuda:0"), r.out());
        assertTrue(r.out().contains("final val loss: "), r.out());
    }
}
