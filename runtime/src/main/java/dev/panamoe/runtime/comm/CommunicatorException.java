package dev.panamoe.runtime.comm;

/**
 * A collective could not complete: a timeout, a failed rank, or an error of the underlying
 * engine. {@link #failedRank()} is the world rank that failed first, or -1 when unknown.
 */
public class CommunicatorException extends RuntimeException {
    private final int failedRank;

    public CommunicatorException(String message, int failedRank, Throwable cause) {
        super(message, cause);
        this.failedRank = failedRank;
    }

    public CommunicatorException(String message) {
        this(message, -1, null);
    }

    public int failedRank() {
        return failedRank;
    }
}
