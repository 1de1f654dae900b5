package dev.panamoe.runtime.golden;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.fail;

import dev.panamoe.bindings.CpuIsa;
import dev.panamoe.bindings.panamoe_h;
import dev.panamoe.runtime.report.StepMetrics;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Golden runs: a run's metrics and final values, bit for bit, compared with the record kept under
 * {@code src/test/resources/golden/<level>/<name>.txt}. They pin the numerics across refactors: a
 * change that reorders a sum, however harmless, shows as the first line that differs.
 *
 * <p>Records are per instruction-set level of the CPU GEMM ({@code avx2}, {@code avx512}: the
 * micro-kernels sum in different orders; the other kernels give the same bits at every level,
 * and no result depends on the thread count or on the host: the GEMM's depth blocks are the
 * same on every host). A level's record is checked on machines that run that level. To record
 * after an intended numerical change, run the tests with {@code -Dpanamoe.golden.record=true}
 * once per level ({@code -Dpanamoe.cpu.isa=avx2} for the AVX2 records) and commit the files
 * with the reason.
 */
public final class Golden {
    static final String RECORD = "panamoe.golden.record";

    private final String name;
    private final List<String> lines = new ArrayList<>();

    private Golden(String name) {
        this.name = name.replaceAll("[^A-Za-z0-9._-]+", "-");
    }

    /** A record named {@code name} (characters other than letters, digits, '.', '_', '-' become '-'). */
    public static Golden named(String name) {
        return new Golden(name);
    }

    /** "avx2" or "avx512": the GEMM family whose records apply to this process. */
    public static String level() {
        return CpuIsa.query(panamoe_h.cpu()).level() == panamoe_h.PMOE_ISA_AVX2() ? "avx2" : "avx512";
    }

    /** Every step's loss, validation loss, aux loss, learning rate, gradient norm and expert counts, as raw bits. */
    public Golden steps(String who, List<StepMetrics> steps) {
        for (StepMetrics m : steps) {
            lines.add(String.format(Locale.ROOT, "%s step %d loss %s val %s aux %s lr %s norm %s counts %s moves %d/%d",
                    who, m.step(), bits(m.loss()), bits(m.valLoss()), bits(m.auxLoss()), bits(m.lr()), bits(m.gradNorm()),
                    Arrays.deepToString(m.expertCounts()), m.placementChanges(), m.movedSlots()));
        }
        return this;
    }

    /** Each value's length and a SHA-256 of its raw float bits, in the map's order. */
    public Golden values(String who, Map<String, float[]> values) {
        values.forEach((n, v) -> value(who + " " + n, v));
        return this;
    }

    /** One value's length and a SHA-256 of its raw float bits. */
    public Golden value(String what, float[] v) {
        lines.add(what + " [" + v.length + "] " + sha256(v));
        return this;
    }

    /** One scalar, as raw bits. */
    public Golden scalar(String what, double v) {
        lines.add(what + " " + bits(v));
        return this;
    }

    /**
     * Asserts the lines equal the record of this level, naming the first line that differs; with
     * {@value #RECORD}=true writes the record instead (under the module's src/test/resources).
     */
    public void check() {
        String path = "golden/" + level() + "/" + name + ".txt";
        String actual = String.join("\n", lines) + "\n";
        if (Boolean.getBoolean(RECORD)) {
            Path file = Path.of("src/test/resources").resolve(path);
            try {
                Files.createDirectories(file.getParent());
                Files.writeString(file, actual);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            System.out.println("golden: recorded " + file.toAbsolutePath());
            return;
        }
        String expected;
        try (InputStream in = Golden.class.getResourceAsStream("/" + path)) {
            assertNotNull(in, "no golden record " + path + " for this CPU level (record it with -D" + RECORD + "=true)");
            expected = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        List<String> want = expected.lines().toList();
        List<String> got = actual.lines().toList();
        for (int i = 0; i < Math.min(want.size(), got.size()); i++) {
            if (!want.get(i).equals(got.get(i))) {
                fail(path + " line " + (i + 1) + " differs:\n  golden: " + want.get(i) + "\n  now:    " + got.get(i));
            }
        }
        assertEquals(want.size(), got.size(), path + ": number of lines");
    }

    /** The value and its raw bits: "2.5 (0x4004000000000000)". */
    private static String bits(double v) {
        return v + " (0x" + Long.toHexString(Double.doubleToRawLongBits(v)) + ")";
    }

    private static String sha256(float[] v) {
        ByteBuffer buf = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float f : v) {
            buf.putInt(Float.floatToRawIntBits(f));
        }
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(buf.array()));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
