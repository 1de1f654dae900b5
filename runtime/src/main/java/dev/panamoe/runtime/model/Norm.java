package dev.panamoe.runtime.model;

/** The normalisation of the pre-norm blocks and of the final norm. */
public enum Norm {
    /** LayerNorm: centred and scaled, with a weight and a bias (GPT-2). */
    LAYER,
    /** RMSNorm: scaled only, with a weight. */
    RMS
}
