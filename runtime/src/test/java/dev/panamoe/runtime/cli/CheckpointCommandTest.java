package dev.panamoe.runtime.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.runtime.cli.TrainCommandTest.Result;
import dev.panamoe.runtime.train.CheckpointStore;
import dev.panamoe.runtime.train.DirectoryLock;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code train}'s handling of its output paths and checkpoint directory: every output checked
 * before the first step, the directory's lock, a fresh run refusing a directory that holds a
 * checkpoint, and {@code --resume} taking the checkpoint's settings and refusing contradicting ones.
 */
class CheckpointCommandTest {

    @TempDir
    Path dir;

    private static String[] tiny(String... extra) {
        List<String> args = new ArrayList<>(List.of("train", "--layers", "2", "--hidden", "16", "--heads", "2",
                "--experts", "4", "--seq", "8", "--steps", "4", "--batch", "4", "--micro-batches", "2", "--warmup", "1",
                "--eval-every", "2", "--eval-batches", "1"));
        args.addAll(Arrays.asList(extra));
        return args.toArray(String[]::new);
    }

    /** Refused before any step: a usage error (one line unless several are listed) naming the path. */
    private static void assertRefusedBeforeTraining(String expected, String... args) {
        Result r = TrainCommandTest.run(args);
        assertEquals(2, r.code(), r.out() + r.err());
        assertTrue(r.err().contains(expected), "'" + expected + "' not in: " + r.err());
        assertFalse(r.out().contains("training:"), "nothing trained: " + r.out());
    }

    @Test
    void everyOutputPathIsCheckedBeforeTheFirstStep() throws IOException {
        Path file = Files.writeString(dir.resolve("a-file"), "x");
        assertRefusedBeforeTraining("--report " + file + ": exists and is not a directory",
                tiny("--report", file.toString()));
        assertRefusedBeforeTraining("--checkpoint " + file + ": exists and is not a directory",
                tiny("--checkpoint", file.toString()));
        assertRefusedBeforeTraining("--metrics " + dir + " is a directory, not a file", tiny("--metrics", dir.toString()));
        Path under = file.resolve("m.jsonl");
        assertRefusedBeforeTraining("--metrics " + under + ": its directory " + file + " exists and is not a directory",
                tiny("--metrics", under.toString()));
        assertRefusedBeforeTraining("--report " + file.resolve("r") + ": cannot be written",
                tiny("--report", file.resolve("r").toString()));
        // A directory nobody may create files in, root included.
        Path readOnly = Path.of("/proc/self");
        assertRefusedBeforeTraining("--checkpoint " + readOnly + ": cannot be written",
                tiny("--checkpoint", readOnly.toString()));
    }

    @Test
    void aSecondRunOnALockedDirectoryIsRefusedNamingTheHolder() {
        Path ck = dir.resolve("ck");
        try (DirectoryLock held = DirectoryLock.acquire(ck)) {
            Result r = TrainCommandTest.run(tiny("--checkpoint", ck.toString()));
            assertEquals(1, r.code(), r.out() + r.err());
            assertEquals("panamoe train: " + ck + " is in use by another run: " + ck.resolve(DirectoryLock.FILE_NAME)
                    + " is locked by process " + ProcessHandle.current().pid() + "; wait for it to end or choose another "
                    + "directory", r.err().strip());
            // fcntl locks are per process: the refused run must not have released the holder's
            assertTrue(heldByThisProcess(ck.resolve(DirectoryLock.FILE_NAME)), "the OS lock survives a refused run");
        }
        assertFalse(heldByThisProcess(ck.resolve(DirectoryLock.FILE_NAME)), "released with its holder");
        Result free = TrainCommandTest.run(tiny("--checkpoint", ck.toString(), "--stop-at", "1"));
        assertEquals(0, free.code(), "released with its holder: " + free.err());
    }

    @Test
    void resumeTakesTheCheckpointsSettingsAndRefusesContradictingOnes() {
        Path ck = dir.resolve("ck");
        Path metrics = dir.resolve("m.jsonl");
        Result first = TrainCommandTest.run(tiny("--checkpoint", ck.toString(), "--stop-at", "2", "--lr", "0.02",
                "--metrics", metrics.toString()));
        assertEquals(0, first.code(), first.err());
        assertEquals("0.02", CheckpointStore.newest(ck).settings().get("--lr"));
        assertEquals(metrics.toAbsolutePath().toString(), CheckpointStore.newest(ck).settings().get("--metrics"));

        Result fresh = TrainCommandTest.run(tiny("--checkpoint", ck.toString()));
        assertEquals(2, fresh.code(), fresh.err());
        assertTrue(fresh.err().contains("--checkpoint " + ck + " already holds the checkpoint of step 2; continue it "
                + "with --resume, or choose another directory"), fresh.err());

        Result contradicting = TrainCommandTest.run("train", "--checkpoint", ck.toString(), "--resume", "--lr", "0.5",
                "--experts", "8", "--hidden", "16", "--eval-every", "1");
        assertEquals(2, contradicting.code(), contradicting.err());
        List<String> lines = contradicting.err().strip().lines().toList();
        assertEquals(3, lines.size(), contradicting.err());
        assertTrue(lines.get(0).startsWith("panamoe train: --resume: 2 options contradict the checkpoint "
                + CheckpointStore.newest(ck).file()), lines.get(0));
        assertEquals("  --experts 8 here, 4 in the checkpoint", lines.get(1));
        assertTrue(lines.get(2).startsWith("  --lr 0.5 here, 0.02 in the checkpoint"), lines.get(2));

        Result resumed = TrainCommandTest.run("train", "--checkpoint", ck.toString(), "--resume", "--eval-every", "1");
        assertEquals(0, resumed.code(), resumed.err());
        assertTrue(resumed.out().contains("lr 0.02 -> "), "the checkpoint's --lr: " + resumed.out());
        assertTrue(resumed.out().contains("resumed from " + ck + " at step 2"), resumed.out());
        assertEquals(4, CheckpointStore.newest(ck).step());
        assertEquals("1", CheckpointStore.newest(ck).settings().get("--eval-every"), "an adjustable option changed");
        assertEquals(4, dev.panamoe.runtime.report.MetricsWriter.read(metrics).size(), "the checkpoint's --metrics");
    }

    /** Regression: a text run named by a relative path, and a plan respelled, resume with the run's own settings. */
    @Test
    void aTextRunByRelativePathAndARespelledPlanResume() throws IOException {
        Path text = dir.resolve("text.txt");
        Files.writeString(text, "the quick brown fox jumps over the lazy dog. ".repeat(40));
        String relative = Path.of("").toAbsolutePath().relativize(text).toString();
        Path ck = dir.resolve("text-ck");
        Result first = TrainCommandTest.run(tiny("--data", relative, "--world", "2", "--plan", "dp=2",
                "--checkpoint", ck.toString(), "--stop-at", "2"));
        assertEquals(0, first.code(), first.err());
        Result resumed = TrainCommandTest.run("train", "--checkpoint", ck.toString(), "--resume", "--plan", "edp2",
                "--tokenizer", "bytes");
        assertEquals(0, resumed.code(), resumed.out() + resumed.err());
        assertEquals(4, CheckpointStore.newest(ck).step());
    }

    @Test
    void resumeWithoutACheckpointSaysSo() {
        Result r = TrainCommandTest.run("train", "--checkpoint", dir.resolve("empty").toString(), "--resume");
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains("--resume: " + dir.resolve("empty") + " holds no checkpoint"), r.err());
    }

    /** Whether /proc/locks lists a lock of this process on file's inode. */
    private static boolean heldByThisProcess(Path file) {
        try {
            long inode = (Long) Files.getAttribute(file, "unix:ino");
            String pid = " " + ProcessHandle.current().pid() + " ";
            return Files.readAllLines(Path.of("/proc/locks")).stream()
                    .anyMatch(l -> l.contains(pid) && l.matches(".*:" + inode + " .*"));
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
