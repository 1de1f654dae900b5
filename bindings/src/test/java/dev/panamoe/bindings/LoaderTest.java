package dev.panamoe.bindings;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LoaderTest {
    /** Runs body with a system property set (or cleared, for null), then restores it. */
    private static <T> T withProperty(String key, String value, Callable<T> body) throws Exception {
        String old = System.getProperty(key);
        try {
            if (value == null) System.clearProperty(key);
            else System.setProperty(key, value);
            return body.call();
        } finally {
            if (old == null) System.clearProperty(key);
            else System.setProperty(key, old);
        }
    }

    private static byte[] resource(String fileName) throws IOException {
        try (InputStream in = LoaderTest.class.getResourceAsStream(NativeLibraries.RESOURCE_DIR + fileName)) {
            return in.readAllBytes();
        }
    }

    @Test
    void cpuLibraryLoadsFromTheClasspathResource() throws Exception {
        NativeLibraries.Loaded cpu = withProperty(NativeLibraries.NATIVE_DIR_PROPERTY, null, NativeLibraries::panamoeCpu);
        assertEquals("libpanamoe_cpu.so", cpu.name());
        assertTrue(cpu.path().getParent().getFileName().toString().startsWith("panamoe-native-"), cpu.path().toString());
        assertArrayEquals(resource("libpanamoe_cpu.so"), Files.readAllBytes(cpu.path()), "extracted copy");
        assertTrue(cpu.lookup().find("pmoe_noop").isPresent());
        assertSame(cpu, withProperty(NativeLibraries.NATIVE_DIR_PROPERTY, null, NativeLibraries::panamoeCpu));
    }

    @Test
    void concurrentFirstLoadsGiveOneLibrary(@TempDir Path dir) throws Exception {
        // A file name no other test loads, so the 8 threads race on the very first load.
        Files.write(dir.resolve("libpanamoe_race.so"), resource("libpanamoe_cpu.so"));
        CyclicBarrier start = new CyclicBarrier(8);
        Callable<NativeLibraries.Loaded> load = () -> {
            start.await();
            return NativeLibraries.panamoe("libpanamoe_race.so");
        };
        List<Future<NativeLibraries.Loaded>> results = withProperty(NativeLibraries.NATIVE_DIR_PROPERTY, dir.toString(), () -> {
            try (ExecutorService pool = Executors.newFixedThreadPool(8)) {
                return pool.invokeAll(IntStream.range(0, 8).mapToObj(i -> load).toList());
            }
        });
        for (Future<NativeLibraries.Loaded> r : results) assertSame(results.get(0).get(), r.get());
    }

    @Test
    void emptyNativeDirIsReportedWithTheDir(@TempDir Path empty) {
        var e = assertThrows(NativeLibraryUnavailableException.class,
                () -> withProperty(NativeLibraries.NATIVE_DIR_PROPERTY, empty.toString(), NativeLibraries::panamoeCpu));
        assertTrue(e.getMessage().contains(empty.toString()), e.getMessage());
        assertTrue(e.getMessage().contains("libpanamoe_cpu.so"), e.getMessage());
        assertTrue(e.getMessage().contains(NativeLibraries.NATIVE_DIR_PROPERTY), e.getMessage());
    }

    @Test
    void nativeDirIsUsedWhenSet(@TempDir Path dir) throws Exception {
        Files.write(dir.resolve("libpanamoe_cpu.so"), resource("libpanamoe_cpu.so"));
        NativeLibraries.Loaded lib = withProperty(NativeLibraries.NATIVE_DIR_PROPERTY, dir.toString(), NativeLibraries::panamoeCpu);
        assertEquals(dir.resolve("libpanamoe_cpu.so").toAbsolutePath(), lib.path());
        assertEquals("cpu", panamoe_h.open(lib).pmoe_backend_name().getString(0));
    }

    @Test
    void brokenLibraryIsReportedWithTheLinkersReason(@TempDir Path dir) throws IOException {
        Path broken = dir.resolve("libpanamoe_cpu.so");
        Files.writeString(broken, "not a shared object\n".repeat(200));
        var e = assertThrows(NativeLibraryUnavailableException.class,
                () -> withProperty(NativeLibraries.NATIVE_DIR_PROPERTY, dir.toString(), NativeLibraries::panamoeCpu));
        assertTrue(e.getMessage().contains(broken.toString()), e.getMessage());
        assertTrue(e.getMessage().contains("invalid ELF header"), e.getMessage());
    }

    @Test
    void missingResourceNamesWhatWasTried() {
        var e = assertThrows(NativeLibraryUnavailableException.class,
                () -> withProperty(NativeLibraries.NATIVE_DIR_PROPERTY, null, () -> NativeLibraries.panamoe("libpanamoe_nope.so")));
        assertTrue(e.getMessage().contains("/native/linux-x86_64/libpanamoe_nope.so"), e.getMessage());
        assertTrue(e.getMessage().contains(NativeLibraries.NATIVE_DIR_PROPERTY), e.getMessage());
    }

    @Test
    void systemLibraryLoadsBySonameOrOverride() {
        NativeLibraries.Loaded libc = NativeLibraries.system("libc.so.6", "panamoe.test.libc");
        assertTrue(libc.path().isAbsolute(), "resolved through /proc/self/maps: " + libc.path());
        assertTrue(libc.lookup().find("strlen").isPresent());

        var missing = assertThrows(NativeLibraryUnavailableException.class,
                () -> NativeLibraries.system("libpanamoe_no_such.so.7", "panamoe.test.none", "PANAMOE_TEST_NONE"));
        assertTrue(missing.getMessage().contains("libpanamoe_no_such.so.7"), missing.getMessage());
        assertTrue(missing.getMessage().contains("panamoe.test.none"), missing.getMessage());
        assertTrue(missing.getMessage().contains("PANAMOE_TEST_NONE"), missing.getMessage());
        assertTrue(missing.getMessage().contains("cannot open shared object file"), missing.getMessage());
        assertSame(libc, NativeLibraries.system("libc.so.6", "panamoe.test.libc"));

        var badOverride = assertThrows(NativeLibraryUnavailableException.class, () -> withProperty(
                "panamoe.test.override", "/nonexistent/libfoo.so", () -> NativeLibraries.system("libc.so.6", "panamoe.test.override")));
        assertTrue(badOverride.getMessage().contains("/nonexistent/libfoo.so"), badOverride.getMessage());
    }

    @Test
    void probeReportsEveryLibraryWithoutThrowing() {
        List<NativeLibraries.Availability> all = NativeLibraries.probe();
        assertEquals(List.of("libpanamoe_cpu.so", "libpanamoe_cuda.so", "libcudart.so.13", "libnccl.so.2", "libmpi.so.40"),
                all.stream().map(NativeLibraries.Availability::name).toList());
        NativeLibraries.Availability cpu = all.get(0);
        assertTrue(cpu.available(), cpu.pathOrReason());
        assertTrue(Files.isRegularFile(Path.of(cpu.pathOrReason())), cpu.pathOrReason());
        for (NativeLibraries.Availability a : all) assertFalse(a.pathOrReason().isBlank(), a.name());
        assertEquals(all.size(), NativeLibraries.describe().lines().count());
    }

    @Test
    void cpuLibraryAnswersVersionAndName() {
        panamoe_h cpu = panamoe_h.cpu();
        assertSame(cpu, panamoe_h.cpu());
        assertEquals("cpu", cpu.pmoe_backend_name().getString(0));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment v = arena.allocate(ValueLayout.JAVA_INT, 3);
            v.fill((byte) -1);
            NativeStatus.check(cpu, cpu.pmoe_version(v, v.asSlice(4), v.asSlice(8)), "pmoe_version");
            int[] version = v.toArray(ValueLayout.JAVA_INT);
            assertTrue(version[0] >= 0 && version[1] >= 0 && version[2] >= 0, "version " + List.of(version[0], version[1], version[2]));
            assertTrue(version[0] + version[1] + version[2] > 0, "version 0.0.0 is not a release");
        }
        assertEquals(0, cpu.pmoe_noop());
    }

    @Test
    void criticalNoopHandleIsLinked() throws Throwable {
        var handle = panamoe_h.cpu().pmoe_noop$criticalHandle();
        assertEquals(MethodType.methodType(int.class), handle.type());
        assertEquals(0, (int) handle.invokeExact());
    }

    @Test
    void cudaLibraryLoadsAndNamesItself() {
        panamoe_h cuda = panamoe_h.open(NativeLibraries.panamoeCuda());
        assertEquals("cuda", cuda.pmoe_backend_name().getString(0));
    }

    @Test
    void failingCallThrowsWithTheNativeMessage() {
        panamoe_h cpu = panamoe_h.cpu();
        int status = cpu.pmoe_set_num_threads(0);
        var e = assertThrows(NativeCallException.class, () -> NativeStatus.check(cpu, status, "pmoe_set_num_threads"));
        assertEquals(panamoe_h.PMOE_ERR_INVALID_ARGUMENT(), e.status());
        assertTrue(e.getMessage().startsWith("pmoe_set_num_threads: "), e.getMessage());
        assertTrue(e.getMessage().matches(".*\\bn\\b.*\\b0\\b.*"), "names n and its value: " + e.getMessage());
        assertTrue(e.getMessage().endsWith("(status PMOE_ERR_INVALID_ARGUMENT)"), e.getMessage());
    }

    @Test
    void successfulCallDoesNotThrow() {
        panamoe_h cpu = panamoe_h.cpu();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment n = arena.allocate(ValueLayout.JAVA_INT);
            NativeStatus.check(cpu, cpu.pmoe_get_num_threads(n), "pmoe_get_num_threads");
            assertTrue(n.get(ValueLayout.JAVA_INT, 0) >= 1, "threads " + n.get(ValueLayout.JAVA_INT, 0));
        }
    }

    @Test
    void functionMissingFromTheLibraryIsUnsupported() {
        // libc implements none of panamoe.h; unlike a partial CUDA build, that stays true.
        panamoe_h libc = panamoe_h.open(NativeLibraries.system("libc.so.6", "panamoe.test.libc"));
        var call = assertThrows(UnsupportedOperationException.class, libc::pmoe_noop);
        assertTrue(call.getMessage().contains("pmoe_noop"), call.getMessage());
        assertTrue(call.getMessage().contains("libc.so.6"), call.getMessage());
        var address = assertThrows(UnsupportedOperationException.class, libc::pmoe_gemm$address);
        assertTrue(address.getMessage().contains("pmoe_gemm"), address.getMessage());
    }
}
