package dev.panamoe.bindings;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Supplier;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * Locates and loads native libraries.
 *
 * <p>PanaMoE's own libraries (libpanamoe_*.so) come from the folder named by the system property
 * {@code panamoe.native.dir} if it is set (and only from there), else from the classpath resource
 * {@code /native/linux-x86_64/<file>}, extracted once per JVM into a temp folder. System
 * libraries (cudart, NCCL, Open MPI) come from an override property or environment variable if
 * set, else from the dynamic linker's search path by soname.
 *
 * <p>Loaded libraries stay loaded for the life of the JVM (global arena); loading the same file
 * (or soname) twice returns the same {@link Loaded}. A library that cannot be loaded throws
 * {@link NativeLibraryUnavailableException} saying what was tried.
 */
@SuppressWarnings("restricted") // binding native code is what this class is for
public final class NativeLibraries {
    public static final String NATIVE_DIR_PROPERTY = "panamoe.native.dir";
    public static final String RESOURCE_DIR = "/native/linux-x86_64/";

    public static final String PANAMOE_CPU = "libpanamoe_cpu.so";
    public static final String PANAMOE_CUDA = "libpanamoe_cuda.so";
    public static final String CUDART = "libcudart.so.13";
    public static final String NCCL = "libnccl.so.2";
    public static final String MPI = "libmpi.so.40";
    public static final String CUDART_PROPERTY = "panamoe.cudart.library";
    public static final String NCCL_PROPERTY = "panamoe.nccl.library";
    public static final String NCCL_ENV = "NCCL_LIBRARY";
    public static final String MPI_PROPERTY = "panamoe.mpi.library";

    private static final int RTLD_LAZY = 1;

    /** A loaded library: its file name, where it was loaded from, and its symbols. */
    public record Loaded(String name, Path path, SymbolLookup lookup) {}

    /** The outcome of trying to load one library, for {@code panamoe doctor}. */
    public record Availability(String name, boolean available, String pathOrReason) {}

    private static final Map<Path, Loaded> LOADED = new ConcurrentHashMap<>();
    private static final Map<String, Loaded> SYSTEM = new ConcurrentHashMap<>();
    private static final Map<String, Path> EXTRACTED = new ConcurrentHashMap<>();
    private static Path tempFolder;

    private NativeLibraries() {}

    public static Loaded panamoeCpu() {
        return panamoe(PANAMOE_CPU);
    }

    public static Loaded panamoeCuda() {
        return panamoe(PANAMOE_CUDA);
    }

    /** Loads a libpanamoe_*.so (the CPU or CUDA library, or e.g. a host-harness build). */
    public static Loaded panamoe(String fileName) {
        String dir = System.getProperty(NATIVE_DIR_PROPERTY);
        Path path = dir != null ? inFolder(Path.of(dir), fileName) : extracted(fileName);
        return LOADED.computeIfAbsent(path.toAbsolutePath(), p -> open(fileName, p));
    }

    /** Loads a system library from the path or name in {@code overrideProperty}, else by soname. */
    public static Loaded system(String soname, String overrideProperty) {
        return system(soname, overrideProperty, null);
    }

    /**
     * Loads a system library from the path or name in {@code overrideProperty} (if set), else in
     * the environment variable {@code overrideEnv} (if non-null and set), else by soname.
     */
    public static Loaded system(String soname, String overrideProperty, String overrideEnv) {
        String override = System.getProperty(overrideProperty);
        if (override == null && overrideEnv != null) override = System.getenv(overrideEnv);
        String target = override != null ? override : soname;
        String overrides = "system property " + overrideProperty
                + (overrideEnv != null ? " or environment variable " + overrideEnv : "")
                + (override != null ? " chose it" : " can name its path");
        return SYSTEM.computeIfAbsent(target, t -> {
            try {
                // Loading by name lets the dynamic linker search LD_LIBRARY_PATH, ld.so.cache, etc.
                SymbolLookup lookup = t.contains("/")
                        ? SymbolLookup.libraryLookup(Path.of(t), Arena.global())
                        : SymbolLookup.libraryLookup(t, Arena.global());
                return new Loaded(soname, mappedPath(t), lookup);
            } catch (IllegalArgumentException e) {
                throw new NativeLibraryUnavailableException(
                        soname + " unavailable: loading \"" + t + "\" failed (" + dlopenError(t) + "); " + overrides, e);
            }
        });
    }

    public static Loaded cudart() {
        return system(CUDART, CUDART_PROPERTY);
    }

    public static Loaded nccl() {
        return system(NCCL, NCCL_PROPERTY, NCCL_ENV);
    }

    public static Loaded mpi() {
        return system(MPI, MPI_PROPERTY);
    }

    /** Tries to load every library PanaMoE may use; never throws. */
    public static List<Availability> probe() {
        return List.of(
                probe(PANAMOE_CPU, NativeLibraries::panamoeCpu),
                probe(PANAMOE_CUDA, NativeLibraries::panamoeCuda),
                probe(CUDART, NativeLibraries::cudart),
                probe(NCCL, NativeLibraries::nccl),
                probe(MPI, NativeLibraries::mpi));
    }

    /** One line per library: "name: path" or "name: unavailable (reason)". */
    public static String describe() {
        return probe().stream()
                .map(a -> a.name() + ": " + (a.available() ? a.pathOrReason() : "unavailable (" + a.pathOrReason() + ")"))
                .collect(Collectors.joining("\n"));
    }

    private static Availability probe(String name, Supplier<Loaded> loader) {
        try {
            return new Availability(name, true, loader.get().path().toString());
        } catch (NativeLibraryUnavailableException e) {
            return new Availability(name, false, e.getMessage());
        }
    }

    private static Path inFolder(Path dir, String fileName) {
        Path path = dir.resolve(fileName);
        if (!Files.isRegularFile(path)) {
            throw new NativeLibraryUnavailableException(fileName + " unavailable: not found in " + dir
                    + " (system property " + NATIVE_DIR_PROPERTY + ")");
        }
        return path;
    }

    /** Copies the classpath resource to this JVM's temp folder, once per file. */
    private static Path extracted(String fileName) {
        return EXTRACTED.computeIfAbsent(fileName, f -> {
            String resource = RESOURCE_DIR + f;
            try (InputStream in = NativeLibraries.class.getResourceAsStream(resource)) {
                if (in == null) {
                    throw new NativeLibraryUnavailableException(f + " unavailable: system property "
                            + NATIVE_DIR_PROPERTY + " is unset and classpath resource " + resource + " does not exist");
                }
                Path path = tempFolder().resolve(f);
                Files.copy(in, path, StandardCopyOption.REPLACE_EXISTING);
                path.toFile().deleteOnExit();
                return path;
            } catch (IOException e) {
                throw new NativeLibraryUnavailableException(
                        f + " unavailable: extracting classpath resource " + resource + " failed: " + e, e);
            }
        });
    }

    /** This JVM's folder for extracted libraries, created on first use. */
    private static synchronized Path tempFolder() throws IOException {
        if (tempFolder == null) {
            tempFolder = Files.createTempDirectory("panamoe-native-");
            tempFolder.toFile().deleteOnExit(); // registered first, so deleted after its files
        }
        return tempFolder;
    }

    private static Loaded open(String fileName, Path path) {
        try {
            return new Loaded(fileName, path, SymbolLookup.libraryLookup(path, Arena.global()));
        } catch (IllegalArgumentException e) {
            throw new NativeLibraryUnavailableException(
                    fileName + " unavailable: loading " + path + " failed (" + dlopenError(path.toString()) + ")", e);
        }
    }

    /**
     * Why dlopen fails, in the dynamic linker's words (e.g. a missing dependency): the JDK's
     * exception only says "Cannot open library". Repeats the dlopen and asks dlerror().
     */
    public static String dlopenError(String target) {
        Linker linker = Linker.nativeLinker();
        SymbolLookup libc = linker.defaultLookup();
        try (Arena arena = Arena.ofConfined()) {
            MethodHandle dlopen = linker.downcallHandle(libc.find("dlopen").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.JAVA_INT));
            MethodHandle dlerror = linker.downcallHandle(libc.find("dlerror").orElseThrow(),
                    FunctionDescriptor.of(panamoe_h.C_POINTER));
            MemorySegment handle = (MemorySegment) dlopen.invokeExact(arena.allocateFrom(target), RTLD_LAZY);
            if (!handle.equals(MemorySegment.NULL)) return "dlopen succeeds now; it failed a moment ago";
            MemorySegment message = (MemorySegment) dlerror.invokeExact();
            return message.equals(MemorySegment.NULL) ? "dlerror gives no reason" : message.getString(0);
        } catch (Throwable t) {
            return "no reason available: " + t;
        }
    }

    /** Where the dynamic linker found a library loaded by name (from /proc/self/maps), else the name. */
    private static Path mappedPath(String target) {
        String name = Path.of(target).getFileName().toString();
        try (Stream<String> maps = Files.lines(Path.of("/proc/self/maps"))) {
            return maps.map(line -> line.substring(line.lastIndexOf(' ') + 1))
                    .filter(p -> p.startsWith("/") && Path.of(p).getFileName().toString().startsWith(name))
                    .findFirst().map(Path::of).orElse(Path.of(target));
        } catch (IOException | UncheckedIOException e) {
            return Path.of(target); // no /proc: the name is all we know
        }
    }
}
