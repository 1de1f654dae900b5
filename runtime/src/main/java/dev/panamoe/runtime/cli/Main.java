package dev.panamoe.runtime.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.ParameterException;

/** Entry point of the {@code panamoe} command line; each subcommand is its own class. */
@Command(
        name = "panamoe",
        mixinStandardHelpOptions = true,
        versionProvider = Main.Version.class,
        description = "Mixture-of-Experts training runtime on CPUs and NVIDIA GPUs.",
        subcommands = {DemoCommand.class, TrainCommand.class, SampleCommand.class, CheckpointCommand.class,
            ShellCommand.class, DoctorCommand.class, PlanCommand.class,
            TraceCommand.class, SimulateCommand.class, LauncherCommands.Test.class, LauncherCommands.Bench.class,
            CommandLine.HelpCommand.class})
public final class Main implements Runnable {

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    /** The configured command line, also used by tests. */
    public static CommandLine commandLine() {
        return new CommandLine(new Main())
                .setExecutionExceptionHandler((e, cmd, parsed) -> {
                    if (e instanceof IllegalArgumentException bad) {
                        ParameterException named = OptionErrors.naming(cmd.getCommandSpec(), bad);
                        if (named != null) {
                            return usageError(named);
                        }
                    }
                    // A failed run ends with its message, not a stack trace; --verbose style
                    // debugging is available through PANAMOE_STACKTRACE=1.
                    if (System.getenv("PANAMOE_STACKTRACE") != null) e.printStackTrace();
                    cmd.getErr().println(cmd.getCommandSpec().qualifiedName() + ": " + e.getMessage());
                    return 1;
                })
                .setParameterExceptionHandler((e, args) -> usageError(e));
    }

    /** A usage error is one line naming the option, and where to look. */
    private static int usageError(ParameterException e) {
        CommandLine cmd = e.getCommandLine();
        String name = cmd.getCommandSpec().qualifiedName();
        cmd.getErr().println(name + ": " + e.getMessage() + " (see '" + name + " --help')");
        return cmd.getCommandSpec().exitCodeOnInvalidInput();
    }

    @Override
    public void run() {
        CommandLine.usage(this, System.out);
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = Main.class.getPackage().getImplementationVersion();
            return new String[] {"panamoe " + (v != null ? v : "(development build)")};
        }
    }
}
