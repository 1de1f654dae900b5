package dev.panamoe.runtime.comm;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Test support: runs a main class in several JVMs under Open MPI's mpirun, with this test's class path. */
public final class MpiRun {
    /** How the job ended: mpirun's exit code, its wall time and its merged stdout and stderr. */
    public record Job(int exitCode, long elapsedMs, String output) {
    }

    private MpiRun() {
    }

    /**
     * mpirun's real path, or null when it is not on PATH (the MPI tests are then skipped). Real:
     * Open MPI takes its prefix from the directory it was started from, and /bin/mpirun (a
     * merged-/usr system's /bin links to /usr/bin) would give it "/", which it refuses.
     */
    public static String mpirun() {
        for (String d : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            Path candidate = Path.of(d, "mpirun");
            if (Files.isExecutable(candidate)) {
                try {
                    return candidate.toRealPath().toString();
                } catch (IOException e) {
                    throw new UncheckedIOException("mpirun: cannot resolve " + candidate, e);
                }
            }
        }
        return null;
    }

    /** The command that runs mainClass with args in a JVM like this one (its java, class path and native library). */
    public static List<String> java(String mainClass, List<String> args) {
        String java = ProcessHandle.current().info().command()
                .orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        List<String> command = new ArrayList<>(List.of(java, "--enable-native-access=ALL-UNNAMED", "-cp",
                System.getProperty("java.class.path")));
        String nativeDir = System.getProperty("panamoe.native.dir");
        if (nativeDir != null) {
            command.add("-Dpanamoe.native.dir=" + nativeDir);
        }
        command.add(mainClass);
        command.addAll(args);
        return command;
    }

    /** mpirun running {@link #java} in ranks processes (oversubscribed: more ranks than cores is fine). */
    public static ProcessBuilder mpirunJava(String mpirun, int ranks, String mainClass, List<String> args) {
        List<String> command = new ArrayList<>(List.of(mpirun, "--allow-run-as-root", "--oversubscribe", "-np",
                Integer.toString(ranks)));
        command.addAll(java(mainClass, args));
        ProcessBuilder pb = new ProcessBuilder(command);
        pb.environment().put("OMPI_MCA_mpi_yield_when_idle", "1"); // ranks share the cores: do not spin
        return pb;
    }

    /**
     * Runs mainClass with args in ranks processes and asserts the job ended within limitMs; a job
     * still running then is killed with its children.
     */
    public static Job run(String mpirun, int ranks, String mainClass, List<String> args, long limitMs)
            throws IOException, InterruptedException {
        Path log = Files.createTempFile("panamoe-mpirun-", ".log");
        ProcessBuilder pb = mpirunJava(mpirun, ranks, mainClass, args).redirectErrorStream(true)
                .redirectOutput(log.toFile());
        long start = System.nanoTime();
        Process p = pb.start();
        boolean ended = p.waitFor(limitMs, TimeUnit.MILLISECONDS);
        if (!ended) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly().waitFor();
        }
        long elapsed = (System.nanoTime() - start) / 1_000_000;
        String output = Files.readString(log, StandardCharsets.UTF_8);
        Files.delete(log);
        assertTrue(ended, "mpirun " + mainClass + " " + args + " still running after " + limitMs + " ms:\n" + output);
        return new Job(p.exitValue(), elapsed, output);
    }
}
