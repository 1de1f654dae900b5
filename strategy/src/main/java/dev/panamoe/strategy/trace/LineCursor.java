package dev.panamoe.strategy.trace;

import java.nio.file.Path;
import java.util.Arrays;

/**
 * Reads one line of a trace file left to right: integers, nested integer lists and the flat JSON
 * objects of the native format. Every error names the file, the line, the column and the text
 * found there.
 */
final class LineCursor {
    private final Path file;
    private final int line;
    private final String text;
    private int pos;

    LineCursor(Path file, int line, String text) {
        this.file = file;
        this.line = line;
        this.text = text;
    }

    TraceFormatException error(String expected) {
        skipSpaces();
        String found = pos >= text.length() ? "end of line"
                : "'" + text.substring(pos, Math.min(text.length(), pos + 16)) + "'";
        return new TraceFormatException(file, line, "column " + (pos + 1) + ": expected " + expected + ", found "
                + found);
    }

    void skipSpaces() {
        while (pos < text.length() && Character.isWhitespace(text.charAt(pos))) {
            pos++;
        }
    }

    boolean atEnd() {
        skipSpaces();
        return pos == text.length();
    }

    void expectEnd() {
        if (!atEnd()) {
            throw error("end of line");
        }
    }

    void expect(char c) {
        if (!tryConsume(c)) {
            throw error("'" + c + "'");
        }
    }

    boolean tryConsume(char c) {
        skipSpaces();
        if (pos < text.length() && text.charAt(pos) == c) {
            pos++;
            return true;
        }
        return false;
    }

    /** A non-negative integer that fits an int. */
    int count(String what) {
        skipSpaces();
        int start = pos;
        while (pos < text.length() && Character.isDigit(text.charAt(pos))) {
            pos++;
        }
        if (start == pos) {
            throw error(what + " (a non-negative integer)");
        }
        long value = 0;
        for (int i = start; i < pos; i++) {
            value = value * 10 + (text.charAt(i) - '0');
            if (value > Integer.MAX_VALUE) {
                pos = start;
                throw error(what + " at most " + Integer.MAX_VALUE);
            }
        }
        return (int) value;
    }

    /** "[a, b, ...]" of non-negative integers (possibly empty). */
    int[] countList(String what) {
        expect('[');
        int[] values = new int[8];
        int n = 0;
        if (!tryConsume(']')) {
            do {
                if (n == values.length) {
                    values = Arrays.copyOf(values, n * 2);
                }
                values[n++] = count(what);
            } while (tryConsume(','));
            expect(']');
        }
        return Arrays.copyOf(values, n);
    }

    /**
     * "[[...], [...]]": one list per micro-batch, each of exactly experts counts (experts <= 0:
     * take the first list's length).
     */
    int[][] countMatrix(int experts) {
        expect('[');
        int[][] rows = new int[4][];
        int n = 0;
        do {
            int at = pos;
            int[] row = countList("token count");
            if (experts <= 0) {
                experts = row.length;
            }
            if (row.length != experts || row.length == 0) {
                pos = at;
                throw error("a list of " + experts + " expert counts (micro-batch " + n + " has " + row.length + ")");
            }
            if (n == rows.length) {
                rows = Arrays.copyOf(rows, n * 2);
            }
            rows[n++] = row;
        } while (tryConsume(','));
        expect(']');
        return Arrays.copyOf(rows, n);
    }

    /** A JSON string without escapes other than \" and \\. */
    String string() {
        expect('"');
        StringBuilder s = new StringBuilder();
        while (pos < text.length() && text.charAt(pos) != '"') {
            char c = text.charAt(pos++);
            if (c == '\\' && pos < text.length()) {
                c = text.charAt(pos++);
            }
            s.append(c);
        }
        if (pos == text.length()) {
            throw error("a closing '\"'");
        }
        pos++;
        return s.toString();
    }
}
