package dev.panamoe.runtime.data;

/** Which part of a corpus a batch comes from. The two never share a sequence. */
public enum Split {
    TRAIN,
    VALIDATION
}
