package dev.panamoe.strategy.io;

import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;

/**
 * Why an I/O operation failed, in words. The file-system exceptions' own messages are often just
 * the path ("cannot write X: X"); the reason is in their type.
 */
public final class IoErrors {
    private IoErrors() {
    }

    /**
     * "PATH: exists and is not a directory" (what {@code Files.createDirectories} means by
     * FileAlreadyExistsException), "PATH: permission denied", "PATH: Read-only file system", ...
     */
    public static String reason(IOException e) {
        if (!(e instanceof FileSystemException fs) || fs.getFile() == null) {
            return String.valueOf(e.getMessage());
        }
        String why = fs.getReason() != null ? fs.getReason() : switch (e) {
            case FileAlreadyExistsException x -> "exists and is not a directory";
            case NoSuchFileException x -> "does not exist";
            case AccessDeniedException x -> "permission denied";
            case NotDirectoryException x -> "is not a directory";
            case DirectoryNotEmptyException x -> "is a directory that is not empty";
            default -> e.getClass().getSimpleName();
        };
        return fs.getFile() + ": " + why;
    }
}
