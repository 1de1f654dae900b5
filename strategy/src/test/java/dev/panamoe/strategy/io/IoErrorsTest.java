package dev.panamoe.strategy.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class IoErrorsTest {

    @TempDir
    Path dir;

    @Test
    void namesThePathAndTheReasonTheExceptionTypeCarries() throws IOException {
        Path file = Files.writeString(dir.resolve("f"), "x");
        IOException exists = assertThrows(IOException.class, () -> Files.createDirectories(file));
        assertEquals(file + ": exists and is not a directory", IoErrors.reason(exists));
        IOException missing = assertThrows(IOException.class, () -> Files.readString(dir.resolve("none")));
        assertEquals(dir.resolve("none") + ": does not exist", IoErrors.reason(missing));
        IOException under = assertThrows(IOException.class, () -> Files.writeString(file.resolve("child"), "y"));
        assertEquals(file.resolve("child") + ": Not a directory", IoErrors.reason(under));
        assertEquals("/x: Read-only file system",
                IoErrors.reason(new FileSystemException("/x", null, "Read-only file system")));
        assertEquals("disk on fire", IoErrors.reason(new IOException("disk on fire")));
    }
}
