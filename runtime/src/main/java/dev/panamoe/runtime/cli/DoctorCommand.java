package dev.panamoe.runtime.cli;

import dev.panamoe.bindings.CpuIsa;
import dev.panamoe.bindings.CudaException;
import dev.panamoe.bindings.CudaRuntime;
import dev.panamoe.bindings.NativeCallException;
import dev.panamoe.bindings.NativeLibraries;
import dev.panamoe.bindings.NativeLibraryUnavailableException;
import dev.panamoe.bindings.NativeStatus;
import dev.panamoe.bindings.cudart_h;
import dev.panamoe.bindings.mpi_h;
import dev.panamoe.bindings.panamoe_h;
import dev.panamoe.ops.Device;
import dev.panamoe.runtime.comm.CommunicatorException;
import dev.panamoe.runtime.comm.NcclCommunicator;
import dev.panamoe.runtime.report.Plural;
import dev.panamoe.runtime.train.Precision;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;

/** Prints what this machine offers PanaMoE: JDK, native libraries, CUDA devices, NCCL, MPI. */
@Command(name = "doctor", mixinStandardHelpOptions = true,
        description = "Print the JDK, the native libraries loaded, CUDA devices, what auto precision picks, NCCL and MPI "
                + "versions (or why not).")
public final class DoctorCommand implements Callable<Integer> {

    @Override
    public Integer call() {
        PrintStream out = System.out;
        out.printf("JDK:        %s %s (%s)%n", System.getProperty("java.vm.vendor"),
                System.getProperty("java.runtime.version"), System.getProperty("java.home"));
        out.printf("machine:    %s %s, %s, %d MiB max heap%n", System.getProperty("os.name"),
                System.getProperty("os.arch"), Plural.of(Runtime.getRuntime().availableProcessors(), "core"),
                Runtime.getRuntime().maxMemory() >> 20);
        String nccl = nccl(); // first: it may find NCCL in the pip wheel, which the library list then shows
        out.println("libraries:");
        for (NativeLibraries.Availability a : NativeLibraries.probe()) {
            // NCCL's reason is on its own line below, where the wheel search is added to it.
            out.printf("  %-20s %s%n", a.name(), a.available() ? a.pathOrReason()
                    : a.name().equals(NativeLibraries.NCCL) ? "unavailable (see NCCL below)"
                    : unavailable(a.name(), a.pathOrReason()));
        }
        out.println("CPU backend: " + cpuBackend());
        out.println("CPU ISA:     " + cpuIsa());
        out.println("CUDA:        " + cuda());
        out.println("precision:   " + autoPrecision());
        out.println("NCCL:        " + nccl);
        out.println("MPI:         " + mpi());
        return 0;
    }

    private static String cpuBackend() {
        try (Arena arena = Arena.ofConfined()) {
            panamoe_h lib = panamoe_h.cpu();
            MemorySegment v = arena.allocate(ValueLayout.JAVA_INT, 4);
            NativeStatus.check(lib, lib.pmoe_version(v, v.asSlice(4), v.asSlice(8)), "pmoe_version");
            NativeStatus.check(lib, lib.pmoe_get_num_threads(v.asSlice(12)), "pmoe_get_num_threads");
            return String.format("%s %d.%d.%d, %s", lib.pmoe_backend_name().getString(0),
                    v.getAtIndex(ValueLayout.JAVA_INT, 0), v.getAtIndex(ValueLayout.JAVA_INT, 1),
                    v.getAtIndex(ValueLayout.JAVA_INT, 2), Plural.of(v.getAtIndex(ValueLayout.JAVA_INT, 3), "thread"));
        } catch (NativeLibraryUnavailableException | NativeCallException | IllegalArgumentException e) { // also a refused CPU ISA level
            return "unavailable: " + e.getMessage();
        }
    }

    /** The CPU's features and the kernels' level in use (PMOE_CPU_ISA / -Dpanamoe.cpu.isa may lower it). */
    private static String cpuIsa() {
        try {
            CpuIsa isa = CpuIsa.query(panamoe_h.cpu());
            return "features " + isa.featureNames() + "; kernels use " + isa.levelName()
                    + (isa.level() < isa.bestLevel() ? " (lowered from " + CpuIsa.levelName(isa.bestLevel()) + ")" : "");
        } catch (NativeLibraryUnavailableException | NativeCallException | IllegalArgumentException e) {
            return "unavailable: " + e.getMessage();
        }
    }

    /** What {@code auto} precision picks on the CPU and on each CUDA device, and why. */
    private static String autoPrecision() {
        StringBuilder s = new StringBuilder("auto picks " + Precision.AUTO.resolve(Device.CPU) + " on the CPU");
        try {
            CudaRuntime.Devices devices = CudaRuntime.probe();
            for (int i = 0; i < devices.count(); i++) {
                s.append("; ").append(Precision.AUTO.resolve(Device.cuda(i))).append(" on cuda:").append(i);
            }
        } catch (NativeLibraryUnavailableException e) {
            // no CUDA runtime: the CUDA line says why
        }
        return s.toString();
    }

    /** Runtime and driver versions, then each device's properties, or cudart's reason for none. */
    private static String cuda() {
        try (Arena arena = Arena.ofConfined()) {
            NativeLibraries.cudart();
            MemorySegment runtime = arena.allocate(ValueLayout.JAVA_INT);
            MemorySegment driver = arena.allocate(ValueLayout.JAVA_INT);
            cudart_h.cudaRuntimeGetVersion(runtime);
            cudart_h.cudaDriverGetVersion(driver);
            String versions = "runtime " + cudaVersion(runtime.get(ValueLayout.JAVA_INT, 0)) + ", driver "
                    + (driver.get(ValueLayout.JAVA_INT, 0) == 0 ? "none" : cudaVersion(driver.get(ValueLayout.JAVA_INT, 0)));
            CudaRuntime.Devices devices = CudaRuntime.probe();
            if (!devices.available()) {
                return versions + "; no usable device: " + devices.reason();
            }
            StringBuilder s = new StringBuilder(versions + "; " + devices.count() + " device(s)");
            for (int i = 0; i < devices.count(); i++) {
                s.append("\n             ");
                try {
                    s.append(CudaRuntime.properties(i));
                } catch (CudaException e) {
                    s.append("cuda:").append(i).append(": ").append(e.getMessage());
                }
            }
            return s.toString();
        } catch (NativeLibraryUnavailableException e) {
            return "unavailable: " + e.getMessage();
        }
    }

    private static String cudaVersion(int v) {
        return (v / 1000) + "." + (v % 1000 / 10);
    }

    /**
     * NCCL found the way the NCCL communicator finds it (NCCL_LIBRARY, the system, the pip wheel):
     * its version and path, or why not (the reason names the library once).
     */
    private static String nccl() {
        try {
            NativeLibraries.Loaded library = NcclCommunicator.library();
            int code = NcclCommunicator.version();
            return String.format("%d.%d.%d (%s)", code / 10000, code / 100 % 100, code % 100, library.path());
        } catch (NativeLibraryUnavailableException | CommunicatorException e) {
            return unavailable(NativeLibraries.NCCL, e.getMessage());
        }
    }

    /** "unavailable: " and the reason without its leading "NAME unavailable: ", so a line names the library once. */
    private static String unavailable(String name, String reason) {
        String prefix = name + " unavailable: ";
        return "unavailable: " + (reason.startsWith(prefix) ? reason.substring(prefix.length()) : reason);
    }

    private static String mpi() {
        try (Arena arena = Arena.ofConfined()) {
            NativeLibraries.mpi();
            MemorySegment text = arena.allocate(mpi_h.MPI_MAX_LIBRARY_VERSION_STRING);
            MemorySegment length = arena.allocate(ValueLayout.JAVA_INT);
            int status = mpi_h.MPI_Get_library_version(text, length);
            if (status != mpi_h.MPI_SUCCESS) return "MPI_Get_library_version failed with status " + status;
            return text.getString(0).lines().findFirst().orElse("").strip();
        } catch (NativeLibraryUnavailableException e) {
            return "unavailable: " + e.getMessage();
        }
    }
}
