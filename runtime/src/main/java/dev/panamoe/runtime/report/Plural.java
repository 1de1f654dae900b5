package dev.panamoe.runtime.report;

import java.util.Locale;

/** A count and its noun, singular for one ("1 step", "2 steps", "1 micro-batch", "2 micro-batches"). */
public final class Plural {
    private Plural() {
    }

    /** {@code n} and the noun; the plural adds "es" after s, x, ch and sh, else "s". */
    public static String of(long n, String noun) {
        if (n == 1) {
            return "1 " + noun;
        }
        boolean es = noun.endsWith("s") || noun.endsWith("x") || noun.endsWith("ch") || noun.endsWith("sh");
        return String.format(Locale.ROOT, "%d %s%s", n, noun, es ? "es" : "s");
    }
}
