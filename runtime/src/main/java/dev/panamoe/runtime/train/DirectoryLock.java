package dev.panamoe.runtime.train;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * An exclusive OS lock (fcntl, through {@link FileChannel#tryLock}) on {@code DIR/train.lock},
 * held by one process for a whole run so that two runs never write one checkpoint directory. The
 * OS releases it when the process ends, however it ends, so a killed run leaves nothing to clean
 * up. The file holds the holder's PID, for the message that refuses a second run; it is never
 * deleted (deleting it would let a second run lock a new file while the first holds the old one).
 *
 * <p>fcntl locks belong to the process: closing any channel of this JVM on the lock file would
 * release a lock another run of this JVM holds. So the directories this JVM holds are also kept in
 * {@link #HELD}, and a second run here is refused before it opens the file.
 */
public final class DirectoryLock implements AutoCloseable {
    public static final String FILE_NAME = "train.lock";

    private static final Set<Path> HELD = ConcurrentHashMap.newKeySet();

    private final Path file;
    private final FileChannel channel;

    private DirectoryLock(Path file, FileChannel channel) {
        this.file = file;
        this.channel = channel;
    }

    /**
     * Locks {@code dir} (created if needed) for this process.
     *
     * @throws IllegalStateException naming the lock file and the holder's PID when another run holds it
     * @throws UncheckedIOException when the directory cannot be created or the lock file not written
     */
    public static DirectoryLock acquire(Path dir) {
        Path file = dir.toAbsolutePath().normalize().resolve(FILE_NAME);
        FileChannel channel = null;
        boolean registered = false;
        try {
            Files.createDirectories(dir);
            if (!HELD.add(file)) {
                throw refused(dir, file, String.valueOf(ProcessHandle.current().pid()));
            }
            registered = true;
            channel = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE);
            FileLock lock;
            try {
                lock = channel.tryLock();
            } catch (OverlappingFileLockException e) {
                lock = null; // a channel of this JVM outside this class holds it
            }
            if (lock == null) {
                throw refused(dir, file, Files.readString(file, StandardCharsets.UTF_8).strip());
            }
            channel.truncate(0);
            channel.write(ByteBuffer.wrap((ProcessHandle.current().pid() + "\n").getBytes(StandardCharsets.UTF_8)), 0);
            channel.force(true);
            DirectoryLock held = new DirectoryLock(file, channel);
            channel = null;
            registered = false;
            return held;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot lock " + file + ": " + e.getMessage(), e);
        } finally {
            if (registered) {
                HELD.remove(file);
            }
            if (channel != null) {
                try {
                    channel.close();
                } catch (IOException ignored) {
                    // the lock was not taken; that failure is the one reported
                }
            }
        }
    }

    private static IllegalStateException refused(Path dir, Path file, String holder) {
        return new IllegalStateException(dir + " is in use by another run: " + file + " is locked by "
                + (holder.isEmpty() ? "a process that did not record its PID" : "process " + holder)
                + "; wait for it to end or choose another directory");
    }

    /** Releases the lock (closing the channel releases it). */
    @Override
    public void close() {
        HELD.remove(file);
        try {
            channel.close();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot release the lock of the checkpoint directory: " + e.getMessage(), e);
        }
    }
}
