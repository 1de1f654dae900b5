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

/**
 * An exclusive OS lock (fcntl, through {@link FileChannel#tryLock}) on {@code DIR/train.lock},
 * held by one process for a whole run so that two runs never write one checkpoint directory. The
 * OS releases it when the process ends, however it ends, so a killed run leaves nothing to clean
 * up. The file holds the holder's PID, for the message that refuses a second run; it is never
 * deleted (deleting it would let a second run lock a new file while the first holds the old one).
 */
public final class DirectoryLock implements AutoCloseable {
    public static final String FILE_NAME = "train.lock";

    private final FileChannel channel;

    private DirectoryLock(FileChannel channel) {
        this.channel = channel;
    }

    /**
     * Locks {@code dir} (created if needed) for this process.
     *
     * @throws IllegalStateException naming the lock file and the holder's PID when another run holds it
     * @throws UncheckedIOException when the directory cannot be created or the lock file not written
     */
    public static DirectoryLock acquire(Path dir) {
        Path file = dir.resolve(FILE_NAME);
        FileChannel channel = null;
        try {
            Files.createDirectories(dir);
            channel = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE);
            FileLock lock;
            try {
                lock = channel.tryLock();
            } catch (OverlappingFileLockException e) {
                lock = null; // another run in this very JVM holds it
            }
            if (lock == null) {
                String holder = Files.readString(file, StandardCharsets.UTF_8).strip();
                throw new IllegalStateException(dir + " is in use by another run: " + file + " is locked by "
                        + (holder.isEmpty() ? "a process that did not record its PID" : "process " + holder)
                        + "; wait for it to end or choose another directory");
            }
            channel.truncate(0);
            channel.write(ByteBuffer.wrap((ProcessHandle.current().pid() + "\n").getBytes(StandardCharsets.UTF_8)), 0);
            channel.force(true);
            DirectoryLock held = new DirectoryLock(channel);
            channel = null;
            return held;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot lock " + file + ": " + e.getMessage(), e);
        } finally {
            if (channel != null) {
                try {
                    channel.close();
                } catch (IOException ignored) {
                    // the lock was not taken; that failure is the one reported
                }
            }
        }
    }

    /** Releases the lock (closing the channel releases it). */
    @Override
    public void close() {
        try {
            channel.close();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot release the lock of the checkpoint directory: " + e.getMessage(), e);
        }
    }
}
