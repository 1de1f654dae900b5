package dev.panamoe.strategy.trace;

import dev.panamoe.strategy.io.IoErrors;
import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * The expert-load format SmartMoE's artifact publishes: a directory of files
 * {@code table_iter{I}_rank{R}.log}, one per iteration I and source rank R, each holding one line
 * per MoE layer {@code L:[[c_0, ..., c_{E-1}], ...]} with one inner list of per-expert token-slot
 * counts per micro-batch. Ranks are 0..R-1 and every iteration has every rank; every file lists
 * the same layers in the same order with the same number of micro-batches.
 */
public final class SmartMoeTraceFormat {
    private static final Pattern FILE = Pattern.compile("table_iter(\\d+)_rank(\\d+)\\.log");

    private SmartMoeTraceFormat() {
    }

    /** True when dir holds at least one table_iter*_rank*.log file. */
    public static boolean isTraceDirectory(Path dir) {
        return Files.isDirectory(dir) && !files(dir).isEmpty();
    }

    public static LoadTrace read(Path dir) {
        TreeMap<Integer, TreeSet<Integer>> files = files(dir);
        if (files.isEmpty()) {
            throw new TraceFormatException(dir, 0, "no table_iter{I}_rank{R}.log files");
        }
        int ranks = files.firstEntry().getValue().size();
        LoadTrace.Builder builder = null;
        List<Integer> layerOrder = null;
        for (var entry : files.entrySet()) {
            int iterationId = entry.getKey();
            for (int r = 0; r < ranks; r++) {
                if (!entry.getValue().contains(r)) {
                    throw new TraceFormatException(dir.resolve(name(iterationId, r)), 0,
                            "missing (iteration " + iterationId + " has no file for rank " + r + " of " + ranks + ")");
                }
            }
            if (entry.getValue().size() != ranks) {
                int extra = entry.getValue().last();
                throw new TraceFormatException(dir.resolve(name(iterationId, extra)), 0, "rank " + extra
                        + " is outside the " + ranks + " ranks of iteration " + files.firstKey());
            }
            int index = -1;
            for (int r = 0; r < ranks; r++) {
                Path file = dir.resolve(name(iterationId, r));
                List<Layer> layers = readFile(file);
                if (builder == null) {
                    layerOrder = layers.stream().map(Layer::id).toList();
                    int[] ids = layerOrder.stream().mapToInt(Integer::intValue).toArray();
                    builder = LoadTrace.builder(ids, ranks, layers.getFirst().counts().length,
                            layers.getFirst().counts()[0].length);
                }
                if (index < 0) {
                    index = builder.iteration(iterationId);
                }
                fill(builder, index, r, file, layers, layerOrder);
            }
        }
        return builder.build();
    }

    public static void write(LoadTrace trace, Path dir) {
        try {
            Files.createDirectories(dir);
            for (int i = 0; i < trace.iterations(); i++) {
                for (int r = 0; r < trace.ranks(); r++) {
                    try (BufferedWriter w = Files.newBufferedWriter(dir.resolve(name(trace.iterationId(i), r)))) {
                        for (int l = 0; l < trace.layers(); l++) {
                            w.write(trace.layerId(l) + ":");
                            writeMatrix(w, trace, i, l, r);
                            w.newLine();
                        }
                    }
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the SmartMoE trace to " + dir + ": " + IoErrors.reason(e), e);
        }
    }

    /** "[[c, ...], ...]" of one rank's micro-batches; shared with the native format. */
    static void writeMatrix(Appendable out, LoadTrace trace, int iteration, int layer, int rank) throws IOException {
        out.append('[');
        for (int m = 0; m < trace.microBatches(); m++) {
            out.append(m == 0 ? "[" : ", [");
            int[] counts = trace.microBatch(iteration, layer, rank, m);
            for (int e = 0; e < counts.length; e++) {
                if (e > 0) {
                    out.append(", ");
                }
                out.append(Integer.toString(counts[e]));
            }
            out.append(']');
        }
        out.append(']');
    }

    private record Layer(int id, int line, int[][] counts) {
    }

    private static List<Layer> readFile(Path file) {
        List<Layer> layers = new ArrayList<>();
        try (BufferedReader in = Files.newBufferedReader(file)) {
            String text;
            int line = 0;
            int experts = 0;
            while ((text = in.readLine()) != null) {
                line++;
                LineCursor cursor = new LineCursor(file, line, text);
                if (cursor.atEnd()) {
                    continue;
                }
                int id = cursor.count("a layer number");
                cursor.expect(':');
                int[][] counts = cursor.countMatrix(experts);
                cursor.expectEnd();
                experts = counts[0].length;
                layers.add(new Layer(id, line, counts));
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
        if (layers.isEmpty()) {
            throw new TraceFormatException(file, 0, "no layer lines (expected \"L:[[c_0, ..., c_{E-1}], ...]\")");
        }
        return layers;
    }

    private static void fill(LoadTrace.Builder builder, int index, int rank, Path file, List<Layer> layers,
            List<Integer> layerOrder) {
        for (int l = 0; l < layers.size(); l++) {
            Layer layer = layers.get(l);
            if (l >= layerOrder.size() || layer.id() != layerOrder.get(l)) {
                throw new TraceFormatException(file, layer.line(), "layer " + layer.id() + " where the first file has "
                        + (l < layerOrder.size() ? "layer " + layerOrder.get(l) : "no more layers")
                        + " (every file must list layers " + layerOrder + ")");
            }
            if (layer.counts().length != builder.microBatches()) {
                throw new TraceFormatException(file, layer.line(), layer.counts().length
                        + " micro-batches where the first file has " + builder.microBatches());
            }
            if (layer.counts()[0].length != builder.experts()) {
                throw new TraceFormatException(file, layer.line(), layer.counts()[0].length
                        + " experts where the first file has " + builder.experts());
            }
            for (int m = 0; m < layer.counts().length; m++) {
                builder.put(index, l, rank, m, layer.counts()[m]);
            }
        }
        if (layers.size() != layerOrder.size()) {
            throw new TraceFormatException(file, 0, layers.size() + " layers where the first file has "
                    + layerOrder.size() + " " + layerOrder);
        }
    }

    private static String name(int iteration, int rank) {
        return "table_iter" + iteration + "_rank" + rank + ".log";
    }

    private static TreeMap<Integer, TreeSet<Integer>> files(Path dir) {
        TreeMap<Integer, TreeSet<Integer>> found = new TreeMap<>();
        try (Stream<Path> list = Files.list(dir)) {
            list.forEach(p -> {
                Matcher m = FILE.matcher(p.getFileName().toString());
                if (m.matches()) {
                    found.computeIfAbsent(parse(p, m.group(1)), k -> new TreeSet<>()).add(parse(p, m.group(2)));
                }
            });
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list " + dir + ": " + e.getMessage(), e);
        }
        return found;
    }

    private static int parse(Path file, String number) {
        try {
            return Integer.parseInt(number);
        } catch (NumberFormatException e) {
            throw new TraceFormatException(file, 0, "number " + number + " in the file name is too large");
        }
    }
}
