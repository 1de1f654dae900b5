package dev.panamoe.ops;

/** A backend cannot run here: its library is missing or there is no usable device; the message says why. */
public final class BackendUnavailableException extends RuntimeException {
    public BackendUnavailableException(String message, Throwable cause) {
        super(message, cause);
    }
}
