package dev.panamoe.bindings;

/** A native call returned a non-zero status; the message carries the native error text. */
public final class NativeCallException extends RuntimeException {
    private final int status;

    public NativeCallException(int status, String message) {
        super(message);
        this.status = status;
    }

    /** The status the call returned (a {@code PMOE_ERR_*} code for panamoe.h functions). */
    public int status() {
        return status;
    }
}
