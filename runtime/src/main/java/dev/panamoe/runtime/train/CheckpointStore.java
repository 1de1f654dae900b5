package dev.panamoe.runtime.train;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.channels.FileChannel;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.zip.CRC32C;

/**
 * The checkpoints of a run in one directory, committed a step at a time: the checkpoint of step S
 * by a world of W ranks is W rank files and a manifest,
 * <pre>
 *   step-0000000S.rank-00000-of-0000W.pmoe ... step-0000000S.rank-(W-1)-of-0000W.pmoe   ({@link Checkpoint}'s format)
 *   step-0000000S.manifest.json    {"format", "version", "step", "world", "files": [{"name", "bytes", "crc32c"}], "settings",
 *                                   and the logical model: {@link CheckpointIndex}'s fields}
 * </pre>
 * Saving: every rank writes its file atomically and durably ({@link Checkpoint#write}); the ranks
 * exchange each file's length and CRC-32C ({@link Confirm}, a collective); rank 0 then reads every
 * file's header, indexes the logical model they hold, writes the manifest atomically and durably, and only after that deletes every file of earlier steps. A step
 * counts once its manifest exists, and a manifest exists only once every file it names is durable,
 * so a crash at any moment leaves the previous complete step, or the new one, intact. A single
 * device is a world of one rank: the same protocol.
 *
 * <p>Loading takes the newest manifest; each rank reads its own file, checks every tensor
 * ({@link Checkpoint#read}), that the file holds the manifest's step, and its length and CRC-32C
 * against the manifest. The directory is assumed to be one that every rank sees (one machine, or
 * a shared file system), as rank 0 writes the manifest over all ranks' files.
 */
public final class CheckpointStore {
    static final int MANIFEST_VERSION = 2;
    private static final String FORMAT = "panamoe-checkpoint";
    /** Any file of a step: its rank files, its manifest and their temporary files. */
    private static final Pattern STEP_FILE = Pattern.compile("\\.?step-(\\d+)\\..*");
    private static final Pattern MANIFEST = Pattern.compile("step-(\\d+)\\.manifest\\.json");

    /**
     * Exchanges every rank's file length and CRC-32C; returns them by rank ({@code [rank] = {bytes,
     * crc32c}}). Collective: every rank calls it once per save, after its file is durable.
     */
    @FunctionalInterface
    public interface Confirm {
        long[][] allRanks(long bytes, int crc32c);
    }

    /** One file a manifest names. */
    public record FileEntry(String name, long bytes, int crc32c) {
    }

    /** A committed step: its manifest's content. */
    public record Manifest(Path file, int step, int world, List<FileEntry> files, Map<String, String> settings,
            CheckpointIndex index) {
    }

    private final Path dir;
    private final int rank;
    private final int world;
    private final Confirm confirm;
    private Map<String, String> settings = Map.of();

    public CheckpointStore(Path dir, int rank, int world, Confirm confirm) {
        this.dir = dir;
        this.rank = rank;
        this.world = world;
        this.confirm = confirm;
    }

    /** The store of a single-device run: one rank, nothing to exchange. */
    public static CheckpointStore single(Path dir) {
        return new CheckpointStore(dir, 0, 1, (bytes, crc) -> new long[][] {{bytes, Integer.toUnsignedLong(crc)}});
    }

    public Path dir() {
        return dir;
    }

    /** What each manifest records beside the files, e.g. the command-line settings the run was started with. */
    public void settings(Map<String, String> runSettings) {
        this.settings = Map.copyOf(runSettings);
    }

    /** Rank {@code r}'s file of {@code step}. */
    public Path rankFile(int step, int r) {
        return dir.resolve(String.format(Locale.ROOT, "step-%08d.rank-%05d-of-%05d.pmoe", step, r, world));
    }

    static Path manifestFile(Path dir, int step) {
        return dir.resolve(String.format(Locale.ROOT, "step-%08d.manifest.json", step));
    }

    /**
     * Saves this rank's snapshot as its part of the snapshot's step; rank 0 commits the step once
     * every rank's file is durable. Collective. Returns this rank's file.
     */
    public Path save(Checkpoint.Snapshot snapshot) {
        int step = snapshot.step();
        Path file = rankFile(step, rank);
        Checkpoint.Written written = Checkpoint.write(file, snapshot);
        long[][] all = confirm.allRanks(written.bytes(), written.crc32c());
        if (rank == 0) {
            commit(step, all);
        }
        return file;
    }

    private void commit(int step, long[][] all) {
        JsonObject m = new JsonObject();
        m.addProperty("format", FORMAT);
        m.addProperty("version", MANIFEST_VERSION);
        m.addProperty("step", step);
        m.addProperty("world", world);
        JsonArray files = new JsonArray();
        for (int r = 0; r < world; r++) {
            JsonObject f = new JsonObject();
            f.addProperty("name", rankFile(step, r).getFileName().toString());
            f.addProperty("bytes", all[r][0]);
            f.addProperty("crc32c", all[r][1] & 0xffffffffL);
            files.add(f);
        }
        m.add("files", files);
        m.add("settings", Checkpoint.strings(settings));
        List<Checkpoint.Header> headers = new ArrayList<>();
        for (int r = 0; r < world; r++) {
            headers.add(Checkpoint.readHeader(rankFile(step, r)));
        }
        CheckpointIndex.of(headers).addTo(m);
        ByteBuffer text = ByteBuffer.wrap((m + "\n").getBytes(StandardCharsets.UTF_8));
        Checkpoint.writeAtomically(manifestFile(dir, step), "checkpoint", channel -> {
            while (text.hasRemaining()) {
                channel.write(text);
            }
        });
        prune(step);
    }

    /** Deletes every file of the steps before {@code committed}: manifests first, so none names a missing file. */
    private void prune(int committed) {
        try {
            List<Path> manifests = new ArrayList<>();
            List<Path> others = new ArrayList<>();
            try (DirectoryStream<Path> files = Files.newDirectoryStream(dir)) {
                for (Path p : files) {
                    Matcher m = STEP_FILE.matcher(p.getFileName().toString());
                    if (m.matches() && parseStep(m.group(1)) < committed) {
                        (MANIFEST.matcher(p.getFileName().toString()).matches() ? manifests : others).add(p);
                    }
                }
            }
            for (Path p : manifests) {
                Files.deleteIfExists(p);
            }
            for (Path p : others) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot remove the checkpoints before step " + committed + " in " + dir
                    + ": " + e.getMessage(), e);
        }
    }

    private static long parseStep(String digits) {
        return digits.length() > 10 ? Long.MAX_VALUE : Long.parseLong(digits);
    }

    // ---- reading ----

    /** The newest committed step in {@code dir}, or null when it holds none (or does not exist). */
    public static Manifest newest(Path dir) {
        if (!Files.isDirectory(dir)) {
            return null;
        }
        Path newest = null;
        long newestStep = -1;
        try (DirectoryStream<Path> files = Files.newDirectoryStream(dir, "step-*.manifest.json")) {
            for (Path p : files) {
                Matcher m = MANIFEST.matcher(p.getFileName().toString());
                if (m.matches() && parseStep(m.group(1)) > newestStep) {
                    newestStep = parseStep(m.group(1));
                    newest = p;
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list the checkpoints in " + dir + ": " + e.getMessage(), e);
        }
        return newest == null ? null : readManifest(newest);
    }

    static Manifest readManifest(Path file) {
        try {
            JsonObject m = JsonParser.parseString(Files.readString(file, StandardCharsets.UTF_8)).getAsJsonObject();
            if (!FORMAT.equals(m.get("format").getAsString()) || m.get("version").getAsInt() != MANIFEST_VERSION) {
                throw new CheckpointException("checkpoint manifest " + file + " is not a version " + MANIFEST_VERSION
                        + " " + FORMAT + " manifest");
            }
            List<FileEntry> files = new ArrayList<>();
            for (JsonElement e : m.getAsJsonArray("files")) {
                JsonObject f = e.getAsJsonObject();
                files.add(new FileEntry(f.get("name").getAsString(), f.get("bytes").getAsLong(),
                        (int) f.get("crc32c").getAsLong()));
            }
            Map<String, String> settings = new LinkedHashMap<>();
            m.getAsJsonObject("settings").entrySet().forEach(e -> settings.put(e.getKey(), e.getValue().getAsString()));
            int step = m.get("step").getAsInt();
            int world = m.get("world").getAsInt();
            if (files.size() != world || !file.getFileName().equals(manifestFile(Path.of(""), step).getFileName())) {
                throw new CheckpointException("checkpoint manifest " + file + " is inconsistent: step " + step
                        + " and " + files.size() + " files for " + world + " ranks");
            }
            return new Manifest(file, step, world, List.copyOf(files), settings, CheckpointIndex.from(m, world));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read checkpoint manifest " + file + ": " + e.getMessage(), e);
        } catch (CheckpointException e) {
            throw e;
        } catch (RuntimeException e) { // Gson's unchecked types for a malformed document or a missing field
            throw new CheckpointException("checkpoint manifest " + file + " is corrupted: " + e);
        }
    }

    /**
     * Reads this rank's file of the newest committed step, checked against its manifest.
     *
     * @throws CheckpointException when there is no committed step, it was written by another number
     *     of ranks, or this rank's file is damaged, of another step, or not the one the manifest lists
     */
    public Checkpoint.Loaded load() {
        Manifest m = newest(dir);
        if (m == null) {
            throw new CheckpointException("no checkpoint to resume in " + dir + " (no step-*.manifest.json: no step"
                    + " was committed there)");
        }
        if (m.world() != world) {
            throw new CheckpointException("checkpoint " + m.file() + " was written by " + m.world() + " ranks; this run"
                    + " has " + world);
        }
        FileEntry entry = m.files().get(rank);
        Path file = rankFile(m.step(), rank);
        if (!entry.name().equals(file.getFileName().toString())) {
            throw new CheckpointException("checkpoint " + m.file() + " lists " + entry.name() + " for rank " + rank
                    + ", not " + file.getFileName());
        }
        Checkpoint.Loaded c = Checkpoint.read(file);
        if (c.step() != m.step()) {
            throw new CheckpointException("checkpoint " + file + " holds step " + c.step() + ", but its manifest "
                    + m.file().getFileName() + " step " + m.step());
        }
        checkListed(m, entry, file);
        return c;
    }

    /**
     * Throws unless {@code file} has the length and CRC-32C that manifest {@code m} lists for it.
     *
     * @throws CheckpointException naming the file, what it holds and what the manifest says
     */
    static void checkListed(Manifest m, FileEntry entry, Path file) {
        long[] actual = lengthAndCrc(file);
        if (actual[0] != entry.bytes() || (int) actual[1] != entry.crc32c()) {
            throw new CheckpointException(String.format(Locale.ROOT, "checkpoint %s is not the file its manifest %s "
                    + "lists: %d bytes with crc32c %08x, the manifest says %d bytes with crc32c %08x", file,
                    m.file().getFileName(), actual[0], (int) actual[1], entry.bytes(), entry.crc32c()));
        }
    }

    private static long[] lengthAndCrc(Path file) {
        CRC32C crc = new CRC32C();
        long bytes = 0;
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer buffer = ByteBuffer.allocate(1 << 20);
            while (channel.read(buffer.clear()) > 0) {
                bytes += buffer.flip().remaining();
                crc.update(buffer);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read checkpoint " + file + ": " + e.getMessage(), e);
        }
        return new long[] {bytes, crc.getValue()};
    }

    /**
     * Refuses ranks that loaded different steps (possible only if the directory changed under a
     * resume), naming each rank's step, so that they fail together rather than wait in mismatched
     * collectives. {@code steps[r]}: rank r's step.
     */
    public static void checkSameStep(int[] steps) {
        for (int step : steps) {
            if (step != steps[0]) {
                StringBuilder s = new StringBuilder("the ranks resumed from different steps:");
                for (int r = 0; r < steps.length; r++) {
                    s.append(r == 0 ? " " : ", ").append("rank ").append(r).append(" step ").append(steps[r]);
                }
                throw new CheckpointException(s.toString());
            }
        }
    }
}
