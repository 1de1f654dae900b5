package dev.panamoe.strategy.trace;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TraceFilesTest {

    @TempDir
    Path dir;

    private static LoadTrace sample(int microBatches) {
        return SyntheticTrace.generate(SyntheticTrace.Config.of(8, 3, 2, 5, 11).withMicroBatches(microBatches, 100));
    }

    @Test
    void smartMoeFormatRoundTrips() {
        LoadTrace trace = sample(2);
        TraceFiles.write(trace, dir.resolve("t"), TraceFiles.Format.SMARTMOE);
        assertTrue(Files.isRegularFile(dir.resolve("t/table_iter4_rank2.log")));
        assertEquals(trace, TraceFiles.read(dir.resolve("t")));
    }

    @Test
    void nativeFormatRoundTrips() {
        LoadTrace trace = sample(3);
        TraceFiles.write(trace, dir.resolve("n"), TraceFiles.Format.NATIVE);
        assertEquals(trace, TraceFiles.read(dir.resolve("n")));
        assertEquals(trace, TraceFiles.read(dir.resolve("n/trace.jsonl")));
    }

    @Test
    void readsSmartMoeFilesWrittenByHand() throws IOException {
        Path t = Files.createDirectories(dir.resolve("hand"));
        for (int iter : new int[] {10, 20}) {
            for (int r = 0; r < 2; r++) {
                Files.writeString(t.resolve("table_iter" + iter + "_rank" + r + ".log"),
                        "1:[[" + iter + ", " + r + ", 0],[1,1,1]]\n\n3: [ [0,0,7] , [2,2,2] ]\n");
            }
        }
        LoadTrace trace = TraceFiles.read(t);
        assertEquals(2, trace.iterations());
        assertEquals(20, trace.iterationId(1));
        assertArrayEquals(new int[] {1, 3}, trace.layerIds());
        assertEquals(2, trace.ranks());
        assertEquals(2, trace.microBatches());
        assertEquals(3, trace.experts());
        assertArrayEquals(new int[] {20, 1, 0}, trace.microBatch(1, 0, 1, 0));
        assertArrayEquals(new long[] {2 * 20 + 2, 1 + 2, 2}, trace.layerLoad(1, 0));
        assertArrayEquals(new long[] {2 + 2, 2 + 2, 7 * 2 + 2 * 2}, trace.layerLoad(0, 1));
        LoadTrace summed = trace.withMicroBatchesSummed();
        assertEquals(1, summed.microBatches());
        assertArrayEquals(trace.layerLoad(1, 1), summed.layerLoad(1, 1));
        assertArrayEquals(new int[] {21, 2, 1}, summed.microBatch(1, 0, 1, 0));
    }

    private TraceFormatException smartMoeError(String rank1Text) throws IOException {
        Path t = Files.createDirectories(dir.resolve("bad"));
        Files.writeString(t.resolve("table_iter0_rank0.log"), "0:[[1, 2, 3]]\n1:[[4, 5, 6]]\n");
        Files.writeString(t.resolve("table_iter0_rank1.log"), rank1Text);
        return assertThrows(TraceFormatException.class, () -> TraceFiles.read(t));
    }

    @Test
    void malformedSmartMoeLinesNameFileLineAndValue() throws IOException {
        TraceFormatException e = smartMoeError("0:[[1, 2, 3]]\n1:[[4, x5, 6]]\n");
        assertTrue(e.getMessage().contains("table_iter0_rank1.log line 2"), e.getMessage());
        assertTrue(e.getMessage().contains("'x5, 6]]'"), e.getMessage());
        assertEquals(2, e.line());
    }

    @Test
    void wrongExpertCountIsNamed() throws IOException {
        TraceFormatException e = smartMoeError("0:[[1, 2, 3]]\n1:[[4, 5]]\n");
        assertTrue(e.getMessage().contains("line 2") && e.getMessage().contains("3 expert counts (micro-batch 0 has 2)"), e.getMessage());
    }

    @Test
    void layerMismatchIsNamed() throws IOException {
        TraceFormatException e = smartMoeError("0:[[1, 2, 3]]\n2:[[4, 5, 6]]\n");
        assertTrue(e.getMessage().contains("table_iter0_rank1.log line 2: layer 2"), e.getMessage());
    }

    @Test
    void negativeAndHugeCountsAreRejected() throws IOException {
        assertTrue(smartMoeError("0:[[1, -2, 3]]\n1:[[4, 5, 6]]\n").getMessage().contains("column 8: token count '-2' is negative"));
        Files.delete(dir.resolve("bad/table_iter0_rank1.log"));
        assertTrue(smartMoeError("0:[[1, 2, 3]]\n1:[[4, 5, 9999999999]]\n").getMessage().contains("9999999999"));
    }

    /** SmartMoE's published logs write counts as Python floats: 0:[[177.0, 105.0, ...], ...]. */
    @Test
    void countsWrittenAsIntegralFloatsAreRead() throws IOException {
        Path t = Files.createDirectories(dir.resolve("floats"));
        Files.writeString(t.resolve("table_iter0_rank0.log"), "0:[[177.0, 105.0, 1.77e2], [0.0, 1E1, 2.50e1]]\n");
        LoadTrace trace = TraceFiles.read(t);
        assertArrayEquals(new int[] {177, 105, 177}, trace.microBatch(0, 0, 0, 0));
        assertArrayEquals(new int[] {0, 10, 25}, trace.microBatch(0, 0, 0, 1));
    }

    @Test
    void nonIntegralNonFiniteAndOutOfRangeFloatsNameFileLineAndColumn() throws IOException {
        String[][] cases = {
            {"1:[[4.0, 5.5, 6.0]]", "line 2: column 10: token count '5.5' is not a whole number"},
            {"1:[[4.0, -5.0, 6.0]]", "line 2: column 10: token count '-5.0' is negative"},
            {"1:[[4.0, nan, 6.0]]", "line 2: column 10: token count 'nan' is not finite"},
            {"1:[[4.0, inf, 6.0]]", "line 2: column 10: token count 'inf' is not finite"},
            {"1:[[4.0, 3e9, 6.0]]", "line 2: column 10: token count '3e9' is larger than 2147483647"},
            {"1:[[4.0, 1e999999999, 6.0]]", "line 2: column 10: token count '1e999999999' is larger than"},
            {"1:[[4.0, 1e-999999999, 6.0]]", "line 2: column 10: token count '1e-999999999' is not a whole number"},
        };
        for (String[] c : cases) {
            TraceFormatException e = smartMoeError("0:[[1, 2, 3]]\n" + c[0] + "\n");
            assertTrue(e.getMessage().contains("table_iter0_rank1.log " + c[1]), e.getMessage());
            Files.delete(dir.resolve("bad/table_iter0_rank1.log"));
        }
    }

    @Test
    void missingRankFileIsNamed() throws IOException {
        Path t = Files.createDirectories(dir.resolve("gap"));
        Files.writeString(t.resolve("table_iter0_rank0.log"), "0:[[1]]\n");
        Files.writeString(t.resolve("table_iter0_rank1.log"), "0:[[1]]\n");
        Files.writeString(t.resolve("table_iter1_rank0.log"), "0:[[1]]\n");
        TraceFormatException e = assertThrows(TraceFormatException.class, () -> TraceFiles.read(t));
        assertTrue(e.getMessage().contains("table_iter1_rank1.log") && e.getMessage().contains("missing"),
                e.getMessage());
    }

    @Test
    void malformedNativeTracesAreNamed() throws IOException {
        String header = "{\"format\": \"panamoe-load-trace\", \"version\": 1, \"layers\": [0], \"ranks\": 2, "
                + "\"micro_batches\": 1, \"experts\": 2}\n";
        Path f = dir.resolve("x.jsonl");
        Files.writeString(f, header + "{\"iter\": 0, \"layer\": 0, \"rank\": 0, \"counts\": [[1, 2]]}\n"
                + "{\"iter\": 0, \"layer\": 0, \"rank\": 0, \"counts\": [[1, 2]]}\n");
        TraceFormatException twice = assertThrows(TraceFormatException.class, () -> TraceFiles.read(f));
        assertTrue(twice.getMessage().contains("x.jsonl line 3") && twice.getMessage().contains("given twice"),
                twice.getMessage());

        Files.writeString(f, header + "{\"iter\": 0, \"layer\": 0, \"rank\": 0, \"counts\": [[1, 2]]}\n");
        TraceFormatException missing = assertThrows(TraceFormatException.class, () -> TraceFiles.read(f));
        assertTrue(missing.getMessage().contains("no counts for layer 0 rank 1"), missing.getMessage());

        Files.writeString(f, header + "{\"iter\": 0, \"layer\": 0, \"rnk\": 0, \"counts\": [[1, 2]]}\n");
        TraceFormatException key = assertThrows(TraceFormatException.class, () -> TraceFiles.read(f));
        assertTrue(key.getMessage().contains("line 2") && key.getMessage().contains("\"rnk\""), key.getMessage());

        Files.writeString(f, header.replace("\"version\": 1", "\"version\": 7"));
        TraceFormatException version = assertThrows(TraceFormatException.class, () -> TraceFiles.read(f));
        assertTrue(version.getMessage().contains("line 1") && version.getMessage().contains("version 7"),
                version.getMessage());

        Files.writeString(f, header + "{\"iter\": 0, \"layer\": 5, \"rank\": 0, \"counts\": [[1, 2]]}\n");
        assertTrue(assertThrows(TraceFormatException.class, () -> TraceFiles.read(f)).getMessage()
                .contains("layer 5 is not in the header"));
    }

    @Test
    void unknownPathsAreRefused() throws IOException {
        assertTrue(assertThrows(TraceFormatException.class, () -> TraceFiles.read(dir.resolve("nope")))
                .getMessage().contains("does not exist"));
        Files.createDirectories(dir.resolve("empty"));
        assertTrue(assertThrows(TraceFormatException.class, () -> TraceFiles.read(dir.resolve("empty")))
                .getMessage().contains("neither"));
    }
}
