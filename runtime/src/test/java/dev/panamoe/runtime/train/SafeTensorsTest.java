package dev.panamoe.runtime.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.ops.DType;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The safetensors writer's layout, F32 and BF16 round trips, and the reader's refusals. */
class SafeTensorsTest {
    @TempDir
    Path dir;

    private static final float[] A = {1.5f, -2f, 1f / 3, 0f, Float.MIN_NORMAL, 65504f};
    private static final float[] B = {7f, 8f};

    private Path write(String name) {
        Path file = dir.resolve(name);
        SafeTensors.write(file, List.of(new SafeTensors.Spec("a.weight", DType.F32, new int[] {2, 3}),
                new SafeTensors.Spec("b", DType.BF16, new int[] {2})), Map.of("step", "7"), i -> i == 0 ? A : B);
        return file;
    }

    @Test
    void writesTheFormatAndReadsItBack() throws IOException {
        Path file = write("w.safetensors");
        byte[] bytes = Files.readAllBytes(file);
        long n = ByteBuffer.wrap(bytes, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        assertEquals(0, n % 8, "the header is padded so the data is 8-byte aligned");
        String header = new String(bytes, 8, (int) n, StandardCharsets.UTF_8).strip();
        assertEquals("{\"__metadata__\":{\"step\":\"7\"},\"a.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],"
                + "\"data_offsets\":[0,24]},\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[24,28]}}", header);
        assertEquals(8 + n + 28, bytes.length);
        assertEquals(1.5f, ByteBuffer.wrap(bytes, (int) (8 + n), 4).order(ByteOrder.LITTLE_ENDIAN).getFloat());
        try (SafeTensors.Reader r = SafeTensors.open(file)) {
            assertEquals(Map.of("step", "7"), r.metadata());
            assertEquals(List.of("a.weight", "b"), r.tensors().stream().map(SafeTensors.Info::name).toList());
            assertArrayEquals(A, r.read("a.weight"));
            assertArrayEquals(B, r.read("b"), "7 and 8 are exact in bf16");
        }
        Path bf16 = dir.resolve("bf16.safetensors");
        SafeTensors.write(bf16, List.of(new SafeTensors.Spec("a", DType.BF16, new int[] {6})), Map.of(), i -> A);
        try (SafeTensors.Reader r = SafeTensors.open(bf16)) {
            float[] got = r.read("a");
            for (int i = 0; i < A.length; i++) {
                assertEquals(A[i], got[i], Math.abs(A[i]) / 256, "bf16 keeps 8 significant bits: " + i);
            }
        }
    }

    @Test
    void aFailedWriteLeavesNoFile() throws IOException {
        Path file = dir.resolve("x.safetensors");
        RuntimeException e = assertThrows(IllegalStateException.class, () -> SafeTensors.write(file,
                List.of(new SafeTensors.Spec("a", DType.F32, new int[] {2})), Map.of(), i -> {
                    throw new IllegalStateException("source failed");
                }));
        assertEquals("source failed", e.getMessage());
        try (Stream<Path> left = Files.list(dir)) {
            assertEquals(List.of(), left.toList(), "neither the file nor a temporary one");
        }
        assertThrows(IllegalArgumentException.class, () -> SafeTensors.write(file,
                List.of(new SafeTensors.Spec("a", DType.F32, new int[] {3})), Map.of(), i -> new float[2]));
        assertFalse(Files.exists(file));
    }

    /** A file of the given header JSON and data length. */
    private Path file(String name, String json, int dataBytes) throws IOException {
        byte[] h = json.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h);
        return Files.write(dir.resolve(name), b.array());
    }

    private static void assertRefused(Path file, String expected) {
        String m = assertThrows(CheckpointException.class, () -> SafeTensors.open(file).close()).getMessage();
        assertTrue(m.startsWith(file + " ") && m.contains(expected), m);
    }

    @Test
    void refusesWhatIsNotAWellFormedFile() throws IOException {
        assertRefused(dir.resolve("absent"), "does not exist or is not a regular file");
        assertRefused(Files.write(dir.resolve("short"), new byte[5]), "is not a safetensors file: 5 bytes");
        assertRefused(Files.writeString(dir.resolve("text"), "hello, this is plain text"),
                "is not a safetensors file: its header length");
        assertRefused(file("notjson", "[1, 2", 0), "its header is not a JSON object");
        assertRefused(file("dtype", "{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8),
                "has tensor 'a' of dtype I64; F32 and BF16 are read");
        assertRefused(file("size", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8),
                "has tensor 'a' whose data_offsets [0,8] do not hold 3 F32 values");
        assertRefused(file("gap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8),
                "has tensor 'a' at bytes [4, 8) after data ending at 0");
        assertRefused(file("extra", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8),
                "has 8 bytes of data but its tensors describe 4");
        assertRefused(file("entry", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 0), "has a malformed header entry 'a'");
    }
}
