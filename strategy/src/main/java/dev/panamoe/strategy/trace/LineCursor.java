package dev.panamoe.strategy.trace;

import java.math.BigDecimal;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;

/**
 * Reads one line of a trace file left to right: integers, nested integer lists and the flat JSON
 * objects of the native format. Every error names the file, the line, the column and the text
 * found there.
 */
final class LineCursor {
    private static final BigDecimal INT_MAX = BigDecimal.valueOf(Integer.MAX_VALUE);

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

    /**
     * A non-negative integer that fits an int, written as an integer ({@code 177}) or as a number
     * with an integral value ({@code 177.0}, {@code 1.77e2}: Python writes its floats so, and
     * SmartMoE's logs hold them). A negative, non-integral, non-finite or too large value is an
     * error naming the column.
     */
    int count(String what) {
        skipSpaces();
        int start = pos;
        while (pos < text.length() && isNumberChar(text.charAt(pos))) {
            pos++;
        }
        String token = text.substring(start, pos);
        if (token.isEmpty()) {
            throw error(what + " (a non-negative integer)");
        }
        pos = start;
        BigDecimal value;
        try {
            value = new BigDecimal(token);
        } catch (NumberFormatException e) {
            throw isNonFinite(token) ? refuse(what + " '" + token + "' is not finite")
                    : error(what + " (a non-negative integer)");
        }
        if (value.signum() < 0) {
            throw refuse(what + " '" + token + "' is negative");
        }
        if (value.compareTo(INT_MAX) > 0) {
            throw refuse(what + " '" + token + "' is larger than " + Integer.MAX_VALUE);
        }
        if (value.stripTrailingZeros().scale() > 0) {
            throw refuse(what + " '" + token + "' is not a whole number");
        }
        pos += token.length();
        return value.intValueExact();
    }

    private TraceFormatException refuse(String problem) {
        return new TraceFormatException(file, line, "column " + (pos + 1) + ": " + problem);
    }

    /** Characters of a number as Python or JSON write it, and of inf/nan, so they are reported whole. */
    private static boolean isNumberChar(char c) {
        return Character.isLetterOrDigit(c) || c == '.' || c == '+' || c == '-';
    }

    private static boolean isNonFinite(String token) {
        String t = token.toLowerCase(Locale.ROOT).replaceFirst("^[+-]", "");
        return t.equals("inf") || t.equals("infinity") || t.equals("nan");
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
