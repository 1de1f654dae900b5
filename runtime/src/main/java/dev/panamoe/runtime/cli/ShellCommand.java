package dev.panamoe.runtime.cli;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

/**
 * {@code panamoe shell}: JShell of the running JDK with PanaMoE on the class path, native access
 * enabled in the JVM that runs the snippets, and a startup script (the resource {@value #STARTUP})
 * importing the public API after JShell's default imports.
 */
@Command(name = "shell", mixinStandardHelpOptions = true,
        description = {"Open JShell with PanaMoE on the class path and its API imported.",
            "Further arguments go to jshell, e.g. a script (panamoe shell session.jsh); put options for jshell"
                    + " after '--' (panamoe shell -- -v)."})
public final class ShellCommand implements Callable<Integer> {

    static final String STARTUP = "panamoe-startup.jsh";

    @Parameters(arity = "0..*", paramLabel = "JSHELL-ARG", description = "Arguments for jshell.")
    List<String> jshellArgs = new ArrayList<>();

    @Override
    public Integer call() throws IOException, InterruptedException {
        Path startup = startupScript();
        try {
            Process jshell = new ProcessBuilder(command(jshell(), classPath(), startup, jshellArgs)).inheritIO().start();
            return jshell.waitFor();
        } finally {
            Files.deleteIfExists(startup);
        }
    }

    /** The jshell command line: class path for compiling and running, native access, default then our imports. */
    static List<String> command(Path jshell, String classPath, Path startup, List<String> args) {
        List<String> cmd = new ArrayList<>(List.of(jshell.toString(), "--class-path", classPath,
                "-R--enable-native-access=ALL-UNNAMED", "--startup", "DEFAULT", "--startup", startup.toString()));
        cmd.addAll(args);
        return cmd;
    }

    /** jshell of the JDK running this command. */
    static Path jshell() {
        Path home = Path.of(System.getProperty("java.home"));
        Path jshell = home.resolve("bin").resolve("jshell");
        if (!Files.isExecutable(jshell)) {
            throw new IllegalStateException("no jshell in " + home + " (a JRE has none); run panamoe with a JDK >= 22");
        }
        return jshell;
    }

    /**
     * The application jar when running from it (./panamoe), else — running from class folders, as
     * the tests do — this JVM's class path.
     */
    static String classPath() {
        try {
            Path source = Path.of(Main.class.getProtectionDomain().getCodeSource().getLocation().toURI());
            return Files.isRegularFile(source) ? source.toString() : System.getProperty("java.class.path");
        } catch (URISyntaxException e) {
            throw new IllegalStateException("cannot locate the PanaMoE classes: " + e.getMessage(), e);
        }
    }

    /** The startup resource copied to a temporary file (jshell reads startup scripts from files). */
    static Path startupScript() {
        try (InputStream in = ShellCommand.class.getResourceAsStream("/" + STARTUP)) {
            if (in == null) {
                throw new IllegalStateException("resource /" + STARTUP + " is missing from the class path");
            }
            Path file = Files.createTempFile("panamoe-startup", ".jsh");
            Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
            return file;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the JShell startup script: " + e.getMessage(), e);
        }
    }
}
