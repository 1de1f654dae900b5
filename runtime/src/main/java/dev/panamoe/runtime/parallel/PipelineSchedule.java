package dev.panamoe.runtime.parallel;

import dev.panamoe.runtime.comm.Communicator;
import dev.panamoe.runtime.model.GptMoeModel;
import java.util.Arrays;

/**
 * Runs the micro-batches of one optimizer step through the pipeline stages with the 1F1B
 * schedule of PipeDream-Flush / Megatron-LM. Stage s of P, with m micro-batches:
 * <pre>
 *   warm-up:    min(P - s - 1, m) forwards
 *   steady:     one forward, one backward, until every forward is done
 *   cool-down:  the remaining backwards
 * </pre>
 * so at most min(P - s, m) micro-batches are in flight on stage s (micro-batch i uses activation
 * slot i % that). Activations go to the next stage and gradients to the previous one over the
 * PIPELINE group. Between two neighbouring stages the messages are always posted in the same
 * order on both sides — where a stage both sends and receives, the lower stage sends first and
 * the higher stage receives first (Megatron's send_forward_recv_backward and
 * send_backward_recv_forward) — so the schedule cannot deadlock even when a send blocks until its
 * receive is posted.
 */
public final class PipelineSchedule {

    /** The data of micro-batch i: inputs (read by the first stage) and targets (read by the last). */
    public interface MicroBatches {
        int[] inputs(int i);

        int[] targets(int i);
    }

    /** Called after the forward of micro-batch i, whose activations are in slot (e.g. to read its aux losses). */
    @FunctionalInterface
    public interface AfterForward {
        void accept(int i, int slot);
    }

    private final GptMoeModel model;
    private final Communicator pipeline;
    private final int stage;
    private final int stages;

    public PipelineSchedule(GptMoeModel model, Communicator pipeline) {
        this.model = model;
        this.pipeline = pipeline;
        this.stage = pipeline.rank();
        this.stages = pipeline.size();
    }

    /** Activation slots stage needs for micro micro-batches in flight under 1F1B. */
    public static int slots(int stage, int stages, int micro) {
        return Math.max(1, Math.min(stages - stage, micro));
    }

    /**
     * Forward and backward of micro micro-batches of batch x seq tokens, gradients accumulated
     * with gradScale ({@link GptMoeModel#backward(int, float)}); returns each micro-batch's loss on the last
     * stage (NaN on the others).
     */
    public float[] train(int micro, int batch, int seq, MicroBatches data, float gradScale, AfterForward after) {
        int slots = slots(stage, stages, micro);
        model.prepare(batch, seq, slots);
        float[] losses = new float[micro];
        Arrays.fill(losses, Float.NaN);
        int warmup = Math.min(stages - stage - 1, micro);
        int steady = micro - warmup;
        for (int i = 0; i < warmup; i++) {
            receiveActivation(i % slots);
            forward(i, i % slots, data, losses, after);
            sendActivation(i % slots);
        }
        if (steady > 0) {
            receiveActivation(warmup % slots);
        }
        for (int j = 0; j < steady; j++) {
            int i = warmup + j;
            forward(i, i % slots, data, losses, after);
            sendActivation(i % slots);
            receiveGradient();
            model.backward(j % slots, gradScale);
            if (j + 1 < steady) {
                receiveActivation((i + 1) % slots);
            }
            sendGradient();
        }
        for (int j = steady; j < micro; j++) {
            receiveGradient();
            model.backward(j % slots, gradScale);
            sendGradient();
        }
        return losses;
    }

    /**
     * Forward only (evaluation), each micro-batch in slot 0 followed by after: returns each
     * micro-batch's loss on the last stage, NaN on the others.
     */
    public float[] evaluate(int micro, int batch, int seq, MicroBatches data, AfterForward after) {
        model.prepare(batch, seq, slots(stage, stages, 1));
        float[] losses = new float[micro];
        Arrays.fill(losses, Float.NaN);
        for (int i = 0; i < micro; i++) {
            receiveActivation(0);
            forward(i, 0, data, losses, after);
            sendActivation(0);
        }
        return losses;
    }

    private void forward(int i, int slot, MicroBatches data, float[] losses, AfterForward after) {
        losses[i] = model.forward(slot, model.isFirst() ? data.inputs(i) : null, model.isLast() ? data.targets(i) : null);
        after.accept(i, slot);
    }

    private void receiveActivation(int slot) {
        if (stage > 0) {
            pipeline.recv(model.input(slot), stage - 1);
        }
    }

    private void sendActivation(int slot) {
        if (stage < stages - 1) {
            pipeline.send(model.output(slot), stage + 1);
        }
    }

    private void receiveGradient() {
        if (stage < stages - 1) {
            pipeline.recv(model.residualGradient(), stage + 1);
        }
    }

    private void sendGradient() {
        if (stage > 0) {
            pipeline.send(model.residualGradient(), stage - 1);
        }
    }
}
