package dev.panamoe.strategy.trace;

import java.nio.file.Path;

/** A trace file that cannot be read; the message names the file, the line and the offending text. */
public final class TraceFormatException extends RuntimeException {
    private final Path file;
    private final int line;

    public TraceFormatException(Path file, int line, String message) {
        super(file + (line > 0 ? " line " + line : "") + ": " + message);
        this.file = file;
        this.line = line;
    }

    public Path file() {
        return file;
    }

    /** 1-based line number, or 0 when the problem is the file as a whole. */
    public int line() {
        return line;
    }
}
