package dev.panamoe.runtime.cli;

import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

/**
 * {@code test} and {@code bench}: the {@code ./panamoe} launcher runs them itself (Maven, the JMH
 * jar), so that {@code help test} and {@code --help} show them beside the other subcommands; given
 * to the jar directly they say where to run them.
 */
final class LauncherCommands {
    private LauncherCommands() {
    }

    @Command(name = "test", mixinStandardHelpOptions = true,
            description = {"Build everything and run every test (mvn verify); this is what CI runs.",
                "Run by the ./panamoe launcher (it calls Maven), e.g. ./panamoe test -pl moe-ops -am"
                        + " -Dtest=MoELayerForwardTest -Dsurefire.failIfNoSpecifiedTests=false"})
    static final class Test implements Callable<Integer> {
        @Parameters(paramLabel = "MAVEN-ARGS", description = "Passed to mvn verify.")
        List<String> args;

        @Override
        public Integer call() {
            throw new IllegalStateException("run it through the launcher: ./panamoe test [MAVEN-ARGS]");
        }
    }

    @Command(name = "bench", mixinStandardHelpOptions = true,
            description = {"Run the JMH benchmarks (jmh/README.md lists them and their results).",
                "Run by the ./panamoe launcher (it starts the benchmarks jar), e.g. ./panamoe bench MoELayerBenchmark"
                        + " -rf json -rff results.json"})
    static final class Bench implements Callable<Integer> {
        @Parameters(paramLabel = "JMH-ARGS", description = "Passed to JMH (a benchmark regex, -rf json, ...).")
        List<String> args;

        @Override
        public Integer call() {
            throw new IllegalStateException("run it through the launcher: ./panamoe bench [JMH-ARGS]");
        }
    }
}
