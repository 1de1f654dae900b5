package dev.panamoe.strategy.trace;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/** Reads a trace in either format (recognised from what is on disk) and writes either. */
public final class TraceFiles {

    public enum Format {
        /** {@link NativeTraceFormat}: one trace.jsonl. */
        NATIVE,
        /** {@link SmartMoeTraceFormat}: table_iter{I}_rank{R}.log files. */
        SMARTMOE;

        public static Format parse(String name) {
            return switch (name.toLowerCase(Locale.ROOT)) {
                case "native" -> NATIVE;
                case "smartmoe" -> SMARTMOE;
                default -> throw new IllegalArgumentException("format: \"" + name + "\" is not native or smartmoe");
            };
        }
    }

    private TraceFiles() {
    }

    /**
     * A directory with table_iter*_rank*.log files is SmartMoE's format; a .jsonl file, or a
     * directory holding trace.jsonl, is the native one.
     */
    public static LoadTrace read(Path path) {
        if (!Files.exists(path)) {
            throw new TraceFormatException(path, 0, "does not exist");
        }
        if (SmartMoeTraceFormat.isTraceDirectory(path)) {
            return SmartMoeTraceFormat.read(path);
        }
        if (Files.isRegularFile(NativeTraceFormat.file(path))) {
            return NativeTraceFormat.read(path);
        }
        throw new TraceFormatException(path, 0, "neither a directory of table_iter{I}_rank{R}.log files nor a "
                + NativeTraceFormat.FILE_NAME + " trace");
    }

    public static void write(LoadTrace trace, Path path, Format format) {
        switch (format) {
            case NATIVE -> NativeTraceFormat.write(trace, path);
            case SMARTMOE -> SmartMoeTraceFormat.write(trace, path);
        }
    }
}
