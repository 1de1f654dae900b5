package dev.panamoe.runtime.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.runtime.comm.NcclCommunicator;
import dev.panamoe.bindings.NativeLibraryUnavailableException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** One-line messages of the subcommands other than train: the command, the option, the value, the reason. */
class CliMessagesTest {

    @TempDir
    Path dir;

    private static void assertOneLine(TrainCommandTest.Result r, int code, String expected) {
        assertEquals(code, r.code(), r.err());
        assertFalse(r.err().strip().contains("\n"), r.err());
        assertEquals(expected, r.err().strip());
    }

    @Test
    void badValuesNameTheOptionInEveryCommand() {
        Path out = dir.resolve("t");
        assertOneLine(TrainCommandTest.run("demo", "--threads", "0"), 2,
                "panamoe demo: Invalid value for option '--threads': must be >= 1, got 0 (see 'panamoe demo --help')");
        assertOneLine(TrainCommandTest.run("trace", "synth", "--out", out.toString(), "--iters", "0"), 2,
                "panamoe trace synth: Invalid value for option '--iters': must be >= 1, got 0"
                        + " (see 'panamoe trace synth --help')");
        assertOneLine(TrainCommandTest.run("trace", "synth", "--out", out.toString(), "--swap", "2"), 2,
                "panamoe trace synth: Invalid value for option '--swap': must be in [0, 1], got 2"
                        + " (see 'panamoe trace synth --help')");
        // a library check's field name ("experts: ...") becomes the option
        assertOneLine(TrainCommandTest.run("trace", "synth", "--out", out.toString(), "--experts", "0"), 2,
                "panamoe trace synth: Invalid value for option '--experts': must be >= 1, got 0"
                        + " (see 'panamoe trace synth --help')");
        TrainCommandTest.run("trace", "synth", "--out", out.toString(), "--iters", "2", "--ranks", "2", "--experts",
                "4");
        TrainCommandTest.Result sim = TrainCommandTest.run("simulate", "--trace", out.toString(), "--window", "0");
        assertTrue(sim.err().strip().startsWith("panamoe simulate: Invalid value for option '--window': must be >= 1,"
                + " got 0"), sim.err());
    }

    @Test
    void aTraceThatCannotBeWrittenSaysTheCommandAndWhy() throws IOException {
        Path file = Files.writeString(dir.resolve("a-file"), "x");
        assertOneLine(TrainCommandTest.run("trace", "synth", "--out", file.toString(), "--iters", "1"), 1,
                "panamoe trace synth: cannot write the SmartMoE trace to " + file + ": " + file
                        + ": exists and is not a directory");
    }

    @Test
    void helpShowsTheLauncherCommands() {
        for (String command : new String[] {"test", "bench"}) {
            picocli.CommandLine cmd = Main.commandLine();
            java.io.StringWriter out = new java.io.StringWriter();
            cmd.setOut(new java.io.PrintWriter(out, true));
            assertEquals(0, cmd.execute("help", command));
            assertTrue(out.toString().startsWith("Usage: panamoe " + command), out.toString());
            assertTrue(out.toString().contains("Run by the ./panamoe launcher"), out.toString());
        }
    }

    @Test
    void ncclUnavailableIsOneShortLine() {
        try {
            NcclCommunicator.library();
        } catch (NativeLibraryUnavailableException e) {
            String m = e.getMessage();
            assertFalse(m.contains("\n") || m.contains("site-packages"), m);
            assertTrue(m.length() < 320, m.length() + ": " + m);
            assertTrue(m.contains("pip install nvidia-nccl-cu13") && m.contains("NCCL_LIBRARY"), m);
            TrainCommandTest.Result doctor = TrainCommandTest.run("doctor");
            assertEquals(1, doctor.out().split("the dynamic linker cannot load it", -1).length - 1, doctor.out());
            return;
        }
        // NCCL is installed here: its line is a version and a path, which DoctorCommand prints unchanged
        assertTrue(TrainCommandTest.run("doctor").out().lines().anyMatch(l -> l.startsWith("NCCL:        2.")));
    }
}
