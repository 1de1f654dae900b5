package dev.panamoe.runtime.cli;

import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.ParameterException;

/**
 * One-line usage errors that name the option and the value: the library's checks name a field
 * ("microBatches: must be >= 1, got 0"), the user typed an option ("--micro-batches"); and bounds
 * that no library check covers, checked when the option is parsed.
 */
final class OptionErrors {

    private static final Pattern FIELD_MESSAGE = Pattern.compile("^(\\w+): (.*)$", Pattern.DOTALL);

    private OptionErrors() {
    }

    /**
     * The usage error naming the option of {@code spec} whose name is the field that starts the
     * message ("microBatches: ..." -> "--micro-batches"), or null when no option matches.
     */
    static ParameterException naming(CommandSpec spec, IllegalArgumentException e) {
        Matcher m = FIELD_MESSAGE.matcher(String.valueOf(e.getMessage()));
        if (!m.matches()) {
            return null;
        }
        OptionSpec option = spec.findOption("--" + kebab(m.group(1)));
        return option == null ? null : new ParameterException(spec.commandLine(),
                "Invalid value for option '" + option.longestName() + "': " + m.group(2), e, option, null);
    }

    /** "microBatches" -> "micro-batches", "topK" -> "top-k", "checkpointDir" -> "checkpoint-dir". */
    static String kebab(String camel) {
        return camel.replaceAll("([a-z0-9])([A-Z])", "$1-$2").toLowerCase(Locale.ROOT);
    }

    /** An integer option that must be >= 1 (counts, sizes, threads). */
    static final class AtLeastOne implements CommandLine.ITypeConverter<Integer> {
        @Override
        public Integer convert(String value) {
            int v = Integer.parseInt(value.strip());
            if (v < 1) {
                throw new CommandLine.TypeConversionException("must be >= 1, got " + value);
            }
            return v;
        }
    }

    /** A finite number >= 0. */
    static final class NonNegative implements CommandLine.ITypeConverter<Double> {
        @Override
        public Double convert(String value) {
            double v = Double.parseDouble(value.strip());
            if (!(v >= 0) || Double.isInfinite(v)) {
                throw new CommandLine.TypeConversionException("must be a finite number >= 0, got " + value);
            }
            return v;
        }
    }

    /** A probability: a number in [0, 1]. */
    static final class Probability implements CommandLine.ITypeConverter<Double> {
        @Override
        public Double convert(String value) {
            double v = Double.parseDouble(value.strip());
            if (!(v >= 0 && v <= 1)) {
                throw new CommandLine.TypeConversionException("must be in [0, 1], got " + value);
            }
            return v;
        }
    }
}
