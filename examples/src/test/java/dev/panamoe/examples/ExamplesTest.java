package dev.panamoe.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/** Runs each example's main, as a user would, and checks what it printed. */
class ExamplesTest {

    @Test
    void moeLayerBackwardMatchesTheCentralDifference() throws Exception {
        String out = run(() -> MoELayerExample.main(new String[0]));
        int[] counts = Arrays.stream(find(out, "routed tokens per expert: \\[([0-9, ]+)\\]").split(", "))
                .mapToInt(Integer::parseInt).toArray();
        assertEquals(8, counts.length, out);
        assertEquals(96 * 2, Arrays.stream(counts).sum(), "every token goes to top-2 experts (dropless):\n" + out);
        assertTrue(Double.parseDouble(find(out, "router.weight \\[[0-9, ]+\\]: \\|grad\\| = ([0-9.]+)")) > 0, out);
        assertTrue(Double.parseDouble(find(out, "relative error ([0-9.eE+-]+)")) < 1e-2, out);
    }

    @Test
    void trainingLoopLearnsBeyondTheUnigramModel() throws Exception {
        String out = run(() -> TrainingLoopExample.main(new String[] {"150"}));
        double first = Double.parseDouble(find(out, "first loss ([0-9.]+)"));
        double unigram = Double.parseDouble(find(out, "unigram loss ([0-9.]+)"));
        double val = Double.parseDouble(find(out, "val loss ([0-9.]+)"));
        assertTrue(first > unigram, "an untrained model does worse than the unigram model:\n" + out);
        assertTrue(val < unigram - 1.0, "150 steps use the context (val loss well under the unigram loss):\n" + out);
        assertTrue(out.contains("step 150  loss"), out);
    }

    @Test
    void smartPlacementBeatsStaticOnASkewedTrace() throws Exception {
        String out = run(() -> SimulationExample.main(new String[0]));
        assertEquals(1.0, Double.parseDouble(find(out, "(?m)^static .* speedup ([0-9.]+)x")), 1e-9, out);
        double greedy = Double.parseDouble(find(out, "(?m)^greedy:10 .* speedup ([0-9.]+)x"));
        double smart = Double.parseDouble(find(out, "(?m)^smart .* speedup ([0-9.]+)x"));
        assertTrue(smart > 1.05 && smart > greedy, out);
    }

    private interface Example {
        void run() throws Exception;
    }

    /** What the example printed on System.out. */
    private static String run(Example example) throws Exception {
        PrintStream saved = System.out;
        ByteArrayOutputStream buffer = new ByteArrayOutputStream();
        System.setOut(new PrintStream(buffer, true, StandardCharsets.UTF_8));
        try {
            example.run();
        } finally {
            System.setOut(saved);
        }
        String out = buffer.toString(StandardCharsets.UTF_8);
        saved.print(out);
        return out;
    }

    private static String find(String out, String regex) {
        Matcher m = Pattern.compile(regex).matcher(out);
        assertTrue(m.find(), "no match for " + regex + " in:\n" + out);
        return m.group(1);
    }
}
