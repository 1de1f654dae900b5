package dev.panamoe.ops;

/** A device could not allocate memory, even after the caching allocator released its cache. */
public final class DeviceOutOfMemoryException extends RuntimeException {
    public DeviceOutOfMemoryException(String message, Throwable cause) {
        super(message, cause);
    }
}
