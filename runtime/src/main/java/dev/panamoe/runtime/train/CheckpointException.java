package dev.panamoe.runtime.train;

/**
 * A checkpoint file that cannot be resumed from: truncated, corrupted (a checksum fails), not a
 * checkpoint, or written for another model, run or data set. The message names the file and the
 * problem (the tensor, the expected and found shapes, the field that differs). Whenever this is
 * thrown, nothing of the checkpoint has been copied into the model or the optimizer.
 */
public final class CheckpointException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public CheckpointException(String message) {
        super(message);
    }
}
