package dev.panamoe.runtime.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Feeds the README's JShell session to jshell started as {@code panamoe shell} starts it. JShell
 * exits 0 even when a snippet fails, so the test looks for the session's closing marker and for the
 * absence of any error or exception report.
 */
class ShellSessionTest {

    @TempDir
    Path dir;

    @Test
    void theReadmeSessionRunsInTheShell() throws IOException, InterruptedException {
        Path session = dir.resolve("session.jsh");
        try (InputStream in = ShellSessionTest.class.getResourceAsStream("readme-session.jsh")) {
            Files.copy(in, session);
        }
        Path startup = ShellCommand.startupScript();
        Path output = dir.resolve("output.txt");
        try {
            List<String> command = ShellCommand.command(ShellCommand.jshell(), ShellCommand.classPath(), startup,
                    List.of(session.toString()));
            Process jshell = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(output.toFile())
                    .redirectInput(new File("/dev/null")).start();
            assertTrue(jshell.waitFor(150, TimeUnit.SECONDS), "jshell did not finish the session within 150 s");
            assertEquals(0, jshell.exitValue());
        } finally {
            Files.deleteIfExists(startup);
        }
        String text = Files.readString(output, StandardCharsets.UTF_8);
        assertTrue(text.contains("panamoe-shell-ok"), "no marker in:\n" + text);
        assertFalse(text.contains("Exception"), text);
        assertFalse(text.contains("|  Error"), text);
        assertTrue(text.contains("step 10  loss "), text);
    }

    @Test
    void theStartupScriptImportsThePublicApi() throws IOException {
        Path startup = ShellCommand.startupScript();
        try {
            String script = Files.readString(startup);
            for (String pkg : List.of("dev.panamoe.ops", "dev.panamoe.runtime.model", "dev.panamoe.runtime.data",
                    "dev.panamoe.runtime.train", "dev.panamoe.runtime.report")) {
                assertTrue(script.contains("import " + pkg + ".*;"), pkg);
            }
            List<String> command = ShellCommand.command(Path.of("/jdk/bin/jshell"), "a.jar", startup, List.of("x.jsh"));
            assertEquals(List.of("/jdk/bin/jshell", "--class-path", "a.jar", "-R--enable-native-access=ALL-UNNAMED",
                    "--startup", "DEFAULT", "--startup", startup.toString(), "x.jsh"), command);
        } finally {
            Files.deleteIfExists(startup);
        }
    }
}
