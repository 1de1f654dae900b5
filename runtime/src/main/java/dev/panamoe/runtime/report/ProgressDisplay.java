package dev.panamoe.runtime.report;

import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;

import java.io.Console;
import java.io.PrintStream;
import java.time.Duration;
import java.util.Locale;
import java.util.function.LongSupplier;

/**
 * Training progress on standard output: step, loss, tokens/s and time to go. On an interactive
 * terminal, a live progress bar redrawn in place (me.tongfei:progressbar); otherwise (a pipe, a file,
 * CI), plain lines, few enough not to flood a log: one at the first step, at every 5% of the run and
 * at the last step, plus one whenever {@value #PLAIN_LINE_SECONDS} s passed without a line.
 *
 * <p>Steps are counted as the trainer counts them: {@code startStep} steps were done before this
 * process (0 for a fresh run, the checkpoint's step on resume) and the run ends at {@code totalSteps};
 * rates and time to go are measured over the steps of this process only.
 */
public sealed interface ProgressDisplay extends AutoCloseable permits ProgressDisplay.Bar, ProgressDisplay.Lines {

    /** Longest time without a plain line while steps keep coming. */
    int PLAIN_LINE_SECONDS = 30;

    /** Number of plain lines in a run, apart from the first and the time-triggered ones. */
    int PLAIN_LINES_PER_RUN = 20;

    /** Reports a finished step. */
    void update(StepMetrics metrics);

    /** Ends the display (the bar's final state stays on screen). */
    @Override
    void close();

    /** The bar when standard output is an interactive terminal, plain lines otherwise. */
    static ProgressDisplay open(long totalSteps, long startStep) {
        return isInteractiveTerminal() ? new Bar(System.out, totalSteps, startStep) : lines(System.out, totalSteps, startStep);
    }

    /** Plain lines on {@code out}, whatever it is attached to. */
    static ProgressDisplay lines(PrintStream out, long totalSteps, long startStep) {
        return new Lines(out, totalSteps, startStep, System::nanoTime);
    }

    /** Whether the JVM's standard input and output are a terminal that can redraw a line. */
    static boolean isInteractiveTerminal() {
        Console console = System.console();
        // Since JDK 22 System.console() exists even when redirected; isTerminal() tells the difference.
        return console != null && console.isTerminal() && !"dumb".equals(System.getenv("TERM"));
    }

    private static void checkSteps(long totalSteps, long startStep) {
        if (totalSteps < 1)
            throw new IllegalArgumentException("totalSteps must be >= 1, got " + totalSteps);
        if (startStep < 0 || startStep > totalSteps)
            throw new IllegalArgumentException("startStep must be in [0, " + totalSteps + "], got " + startStep);
    }

    /** "12.3k"-style rate with three significant digits or so. */
    private static String rate(double perSecond) {
        if (perSecond >= 1e6)
            return String.format(Locale.ROOT, "%.2fM", perSecond / 1e6);
        if (perSecond >= 1e3)
            return String.format(Locale.ROOT, "%.1fk", perSecond / 1e3);
        return String.format(Locale.ROOT, "%.0f", perSecond);
    }

    private static String clock(Duration d) {
        return String.format(Locale.ROOT, "%d:%02d:%02d", d.toHours(), d.toMinutesPart(), d.toSecondsPart());
    }

    /** The live bar; progressbar draws step count, percentage, elapsed time and ETA itself. */
    final class Bar implements ProgressDisplay {
        private final ProgressBar bar;

        Bar(PrintStream out, long totalSteps, long startStep) {
            checkSteps(totalSteps, startStep);
            bar = new ProgressBarBuilder()
                    .setTaskName("train")
                    .setInitialMax(totalSteps)
                    .startsFrom(startStep, Duration.ZERO)
                    .setStyle(ProgressBarStyle.COLORFUL_UNICODE_BLOCK)
                    .setUpdateIntervalMillis(250)
                    .setConsumer(new ConsoleProgressBarConsumer(out))
                    .build();
        }

        @Override
        public void update(StepMetrics m) {
            bar.stepTo(m.step());
            bar.setExtraMessage(String.format(Locale.ROOT, "loss %.4f  %s tok/s", m.loss(), rate(m.tokensPerSecond())));
        }

        @Override
        public void close() {
            bar.close();
        }
    }

    /** Plain lines for logs. */
    final class Lines implements ProgressDisplay {
        private final PrintStream out;
        private final long totalSteps;
        private final long startStep;
        private final long stepsPerLine;
        private final LongSupplier nanoClock;
        private final long startedAt;
        private long lastLineAt;
        private boolean printedAny;
        private double lastValLoss = Double.NaN;

        Lines(PrintStream out, long totalSteps, long startStep, LongSupplier nanoClock) {
            checkSteps(totalSteps, startStep);
            this.out = out;
            this.totalSteps = totalSteps;
            this.startStep = startStep;
            this.stepsPerLine = Math.max(1, Math.ceilDiv(totalSteps, PLAIN_LINES_PER_RUN));
            this.nanoClock = nanoClock;
            this.startedAt = nanoClock.getAsLong();
            this.lastLineAt = startedAt;
        }

        @Override
        public void update(StepMetrics m) {
            if (m.evaluated())
                lastValLoss = m.valLoss();
            long now = nanoClock.getAsLong();
            boolean due = !printedAny || m.step() % stepsPerLine == 0 || m.step() >= totalSteps
                    || now - lastLineAt >= PLAIN_LINE_SECONDS * 1_000_000_000L;
            if (!due)
                return;
            out.println(line(m, now));
            out.flush();
            printedAny = true;
            lastLineAt = now;
        }

        private String line(StepMetrics m, long now) {
            Duration elapsed = Duration.ofNanos(now - startedAt);
            long done = m.step() - startStep;
            StringBuilder line = new StringBuilder(String.format(Locale.ROOT, "step %d/%d %3d%%  loss %.4f",
                    m.step(), totalSteps, 100 * m.step() / totalSteps, m.loss()));
            if (!Double.isNaN(lastValLoss))
                line.append(String.format(Locale.ROOT, "  val %.4f", lastValLoss));
            line.append("  ").append(rate(m.tokensPerSecond())).append(" tok/s  elapsed ").append(clock(elapsed));
            if (done > 0)
                line.append("  eta ").append(clock(elapsed.multipliedBy(Math.max(0, totalSteps - m.step())).dividedBy(done)));
            return line.toString();
        }

        @Override
        public void close() {
            out.flush();
        }
    }
}
