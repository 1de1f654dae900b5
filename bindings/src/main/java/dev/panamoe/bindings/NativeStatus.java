package dev.panamoe.bindings;

/** Turns the int status of a panamoe.h call into an exception carrying the native message. */
public final class NativeStatus {
    private NativeStatus() {}

    /**
     * Throws {@link NativeCallException} "function: message (status NAME)" if status is not
     * PMOE_OK. Call it right after the failing call, on the same thread: pmoe_last_error() is
     * per thread and is overwritten by the next call.
     */
    public static void check(panamoe_h lib, int status, String function) {
        if (status == panamoe_h.PMOE_OK()) return;
        String message = lib.pmoe_last_error().getString(0);
        throw new NativeCallException(status, function + ": " + message + " (status " + name(status) + ")");
    }

    /** The macro name of a status code, e.g. "PMOE_ERR_INVALID_ARGUMENT". */
    public static String name(int status) {
        return switch (status) {
            case 0 -> "PMOE_OK";
            case 1 -> "PMOE_ERR_INVALID_ARGUMENT";
            case 2 -> "PMOE_ERR_UNSUPPORTED";
            case 3 -> "PMOE_ERR_NON_FINITE";
            case 4 -> "PMOE_ERR_RUNTIME";
            default -> "unknown status " + status;
        };
    }
}
