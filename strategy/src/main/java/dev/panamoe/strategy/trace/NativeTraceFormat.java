package dev.panamoe.strategy.trace;

import dev.panamoe.strategy.io.IoErrors;
import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * PanaMoE's own trace format: one JSON-lines file ({@code trace.jsonl} when given a directory).
 * The first line is a header,
 * <pre>
 * {"format": "panamoe-load-trace", "version": 1, "layers": [1, 3], "ranks": 4, "micro_batches": 2, "experts": 8}
 * </pre>
 * and every other line is one source rank's counts for one MoE layer at one iteration,
 * <pre>
 * {"iter": 0, "layer": 1, "rank": 0, "counts": [[c_0, ..., c_7], [c_0, ..., c_7]]}
 * </pre>
 * with one inner list per micro-batch (as in SmartMoE's files). The lines of an iteration are
 * contiguous, iterations ascend, and each iteration has exactly one line per (layer, rank). Blank
 * lines are ignored. Everything lives in one file, so a trace is one artifact to copy and diff.
 */
public final class NativeTraceFormat {
    public static final String FILE_NAME = "trace.jsonl";
    static final String FORMAT = "panamoe-load-trace";
    static final int VERSION = 1;

    private NativeTraceFormat() {
    }

    /** The trace file: path itself, or path/trace.jsonl when path is a directory. */
    public static Path file(Path path) {
        return Files.isDirectory(path) ? path.resolve(FILE_NAME) : path;
    }

    public static LoadTrace read(Path path) {
        Path file = file(path);
        try (BufferedReader in = Files.newBufferedReader(file)) {
            String text;
            int line = 0;
            LoadTrace.Builder builder = null;
            int iteration = -1;
            int iterationId = 0;
            while ((text = in.readLine()) != null) {
                line++;
                LineCursor cursor = new LineCursor(file, line, text);
                if (cursor.atEnd()) {
                    continue;
                }
                if (builder == null) {
                    builder = header(cursor);
                    continue;
                }
                Row row = row(cursor, builder.experts());
                int layer = builder.layerIndex(row.layer());
                if (layer < 0) {
                    throw new TraceFormatException(file, line, "layer " + row.layer() + " is not in the header's layers");
                }
                if (row.rank() >= builder.ranks()) {
                    throw new TraceFormatException(file, line, "rank " + row.rank() + " is outside [0, "
                            + builder.ranks() + ")");
                }
                if (row.counts().length != builder.microBatches()) {
                    throw new TraceFormatException(file, line, row.counts().length + " micro-batches, the header says "
                            + builder.microBatches());
                }
                try {
                    if (iteration < 0 || row.iter() != iterationId) {
                        iteration = builder.iteration(row.iter());
                        iterationId = row.iter();
                    }
                    for (int m = 0; m < row.counts().length; m++) {
                        builder.put(iteration, layer, row.rank(), m, row.counts()[m]);
                    }
                } catch (IllegalArgumentException e) {
                    throw new TraceFormatException(file, line, e.getMessage());
                }
            }
            if (builder == null) {
                throw new TraceFormatException(file, 0, "empty (expected a header line)");
            }
            try {
                return builder.build();
            } catch (IllegalArgumentException e) {
                throw new TraceFormatException(file, line, e.getMessage());
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
    }

    /** Writes trace to path (a directory gets path/trace.jsonl; a missing path ending in .jsonl is a file). */
    public static Path write(LoadTrace trace, Path path) {
        Path file = path.toString().endsWith(".jsonl") ? path : path.resolve(FILE_NAME);
        try {
            if (file.getParent() != null) {
                Files.createDirectories(file.getParent());
            }
            try (BufferedWriter w = Files.newBufferedWriter(file)) {
                w.write("{\"format\": \"" + FORMAT + "\", \"version\": " + VERSION + ", \"layers\": "
                        + Arrays.toString(trace.layerIds()) + ", \"ranks\": " + trace.ranks() + ", \"micro_batches\": "
                        + trace.microBatches() + ", \"experts\": " + trace.experts() + "}");
                w.newLine();
                for (int i = 0; i < trace.iterations(); i++) {
                    for (int l = 0; l < trace.layers(); l++) {
                        for (int r = 0; r < trace.ranks(); r++) {
                            w.write("{\"iter\": " + trace.iterationId(i) + ", \"layer\": " + trace.layerId(l)
                                    + ", \"rank\": " + r + ", \"counts\": ");
                            SmartMoeTraceFormat.writeMatrix(w, trace, i, l, r);
                            w.write('}');
                            w.newLine();
                        }
                    }
                }
            }
            return file;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the trace to " + file + ": " + IoErrors.reason(e), e);
        }
    }

    private static LoadTrace.Builder header(LineCursor cursor) {
        String format = null;
        Integer version = null;
        int[] layers = null;
        int ranks = 0;
        int microBatches = 0;
        int experts = 0;
        cursor.expect('{');
        do {
            String key = cursor.string();
            cursor.expect(':');
            switch (key) {
                case "format" -> format = cursor.string();
                case "version" -> version = cursor.count("version");
                case "layers" -> layers = cursor.countList("a layer number");
                case "ranks" -> ranks = cursor.count("ranks");
                case "micro_batches" -> microBatches = cursor.count("micro_batches");
                case "experts" -> experts = cursor.count("experts");
                default -> throw cursor.error("a header key (format, version, layers, ranks, micro_batches, experts)"
                        + " instead of \"" + key + "\"");
            }
        } while (cursor.tryConsume(','));
        cursor.expect('}');
        cursor.expectEnd();
        if (!FORMAT.equals(format) || version == null || version != VERSION) {
            throw cursor.error("a header with \"format\": \"" + FORMAT + "\", \"version\": " + VERSION + " (got format "
                    + format + ", version " + version + ")");
        }
        try {
            return LoadTrace.builder(layers, ranks, microBatches, experts);
        } catch (IllegalArgumentException e) {
            throw cursor.error("a valid header (" + e.getMessage() + ")");
        }
    }

    private record Row(int iter, int layer, int rank, int[][] counts) {
    }

    private static Row row(LineCursor cursor, int experts) {
        int iter = -1;
        int layer = -1;
        int rank = -1;
        int[][] counts = null;
        cursor.expect('{');
        do {
            String key = cursor.string();
            cursor.expect(':');
            switch (key) {
                case "iter" -> iter = cursor.count("iter");
                case "layer" -> layer = cursor.count("layer");
                case "rank" -> rank = cursor.count("rank");
                case "counts" -> counts = cursor.countMatrix(experts);
                default -> throw cursor.error("a key iter, layer, rank or counts instead of \"" + key + "\"");
            }
        } while (cursor.tryConsume(','));
        cursor.expect('}');
        cursor.expectEnd();
        if (iter < 0 || layer < 0 || rank < 0 || counts == null) {
            throw cursor.error("all of iter, layer, rank and counts");
        }
        return new Row(iter, layer, rank, counts);
    }
}
