package dev.panamoe.ops;

import static dev.panamoe.ops.Checks.ANY;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.BiConsumer;
import java.util.random.RandomGenerator;

/**
 * The expert FFNs, computed for all experts at once with grouped GEMMs over the expert-sorted
 * rows: out = act(x · W1_e) · W2_e for the rows of expert e. Each expert owns its weights and
 * gradients as separate tensors (W1 [hidden, ffn] — [hidden, 2 * ffn] = [gate | up] for SwiGLU —
 * and W2 [ffn, hidden]), so they can be sharded, replicated and migrated one by one; the
 * kernels reach them through address tables built once and patched when an expert is replaced
 * or the slot order changes.
 *
 * <p>With dtype bf16 (mixed precision) the parameters stay f32 masters with f32 gradients, and
 * each expert also holds bf16 working copies of W1 and W2, which the forward and backward read;
 * {@link #refreshWorkingCopies} rounds the masters into them (after every optimizer step). Rows
 * (xs, h, a, out and their gradients) are then bf16, and the weight gradients are accumulated
 * into the f32 masters' gradients by bf16 GEMMs with f32 output.
 */
public final class Experts {
    private final Backend backend;
    private final int hidden;
    private final int ffn;
    private final Activation activation;
    private final Parameter[] w1;
    private final Parameter[] w2;
    /** Expert computed by each slot (group) of the grouped GEMMs. */
    private final int[] expertOfSlot;
    private final TensorTable w1Table;
    private final TensorTable w2Table;
    private final TensorTable w1GradTable;
    private final TensorTable w2GradTable;
    /** Storage of the rows and of the weights the GEMMs read. */
    private final DType dtype;
    /** bf16 working copies of w1/w2 (bf16 only; with f32 the GEMMs read the masters). */
    private final Tensor[] w1Work;
    private final Tensor[] w2Work;
    /** Whether the next backward writes the weight gradients rather than adding to them (discardGradients). */
    private boolean gradientsDiscarded;

    /**
     * Allocates count experts in scope, named "experts.e.w1" / "experts.e.w2", initialised like
     * torch.nn.Linear: uniform in +-1/sqrt(fan_in), drawn from rng in expert order (w1 then w2).
     */
    public Experts(Backend backend, TensorScope scope, int count, int hidden, int ffn, Activation activation,
            RandomGenerator rng) {
        this(backend, scope, count, hidden, ffn, activation, DType.F32, rng);
    }

    /** As above, computing with rows and working weights of dtype (f32, or bf16 with f32 masters). */
    public Experts(Backend backend, TensorScope scope, int count, int hidden, int ffn, Activation activation,
            DType dtype, RandomGenerator rng) {
        this.backend = Checks.notNull("backend", backend);
        Checks.notNull("dtype", dtype);
        Checks.require(dtype == DType.F32 || dtype == DType.BF16, "dtype: must be f32 or bf16, got " + dtype);
        this.dtype = dtype;
        Checks.atLeast("count", count, 1);
        this.hidden = Checks.atLeast("hidden", hidden, 1);
        this.ffn = Checks.atLeast("ffn", ffn, 1);
        this.activation = Checks.notNull("activation", activation);
        Checks.notNull("rng", rng);
        this.w1 = new Parameter[count];
        this.w2 = new Parameter[count];
        this.expertOfSlot = new int[count];
        for (int e = 0; e < count; e++) {
            w1[e] = Parameter.allocate(scope, "experts." + e + ".w1", hidden, activation.inputWidth(ffn));
            w2[e] = Parameter.allocate(scope, "experts." + e + ".w2", ffn, hidden);
            initUniform(w1[e].value(), hidden, rng);
            initUniform(w2[e].value(), ffn, rng);
            expertOfSlot[e] = e;
        }
        boolean bf16 = dtype == DType.BF16;
        this.w1Work = new Tensor[bf16 ? count : 0];
        this.w2Work = new Tensor[bf16 ? count : 0];
        for (int e = 0; e < w1Work.length; e++) {
            w1Work[e] = scope.allocate("experts." + e + ".w1.bf16", DType.BF16, w1[e].value().shape());
            w2Work[e] = scope.allocate("experts." + e + ".w2.bf16", DType.BF16, w2[e].value().shape());
        }
        this.w1Table = scope.table("w1", bf16 ? List.of(w1Work) : values(w1));
        this.w2Table = scope.table("w2", bf16 ? List.of(w2Work) : values(w2));
        refreshWorkingCopies();
        this.w1GradTable = scope.table("w1.grad", grads(w1));
        this.w2GradTable = scope.table("w2.grad", grads(w2));
    }

    /** Fills t with uniform values in [-1/sqrt(fanIn), 1/sqrt(fanIn)). */
    static void initUniform(Tensor t, int fanIn, RandomGenerator rng) {
        double bound = 1.0 / Math.sqrt(fanIn);
        float[] v = new float[Math.toIntExact(t.numel())];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) rng.nextDouble(-bound, bound);
        }
        t.copyFrom(v);
    }

    public int count() {
        return w1.length;
    }

    public int hidden() {
        return hidden;
    }

    public int ffn() {
        return ffn;
    }

    public Activation activation() {
        return activation;
    }

    /** Storage of the rows and of the weights the GEMMs read: f32, or bf16 working copies. */
    public DType dtype() {
        return dtype;
    }

    /**
     * Rounds every expert's f32 master weights into its bf16 working copies (nearest even): after
     * writing the masters other than by an optimizer step that writes the copies itself
     * ({@link #forEachWorkingCopy}). A no-op in f32.
     */
    public void refreshWorkingCopies() {
        forEachWorkingCopy(this::refresh);
    }

    /** The same for one expert's (slot's) working copies only. */
    public void refreshWorkingCopies(int expert) {
        Checks.require(expert >= 0 && expert < count(), "expert: must be in [0, " + count() + "), got " + expert);
        forEachWorkingCopy(expert, this::refresh);
    }

    /** Gives action each expert's w1 and w2 with its bf16 working copy; nothing in f32. */
    public void forEachWorkingCopy(BiConsumer<Parameter, Tensor> action) {
        for (int e = 0; e < count(); e++) {
            forEachWorkingCopy(e, action);
        }
    }

    private void forEachWorkingCopy(int expert, BiConsumer<Parameter, Tensor> action) {
        if (dtype == DType.BF16) {
            action.accept(w1[expert], w1Work[expert]);
            action.accept(w2[expert], w2Work[expert]);
        }
    }

    private void refresh(Parameter master, Tensor working) {
        backend.convert(master.value(), working);
    }

    public Parameter w1(int expert) {
        return w1[expert];
    }

    public Parameter w2(int expert) {
        return w2[expert];
    }

    /** experts.0.w1, experts.0.w2, experts.1.w1, ... */
    public List<Parameter> parameters() {
        List<Parameter> all = new ArrayList<>(2 * count());
        for (int e = 0; e < count(); e++) {
            all.add(w1[e]);
            all.add(w2[e]);
        }
        return all;
    }

    /** Replaces expert e's weights (and gradients), e.g. after a migration; shapes must match. */
    public void setExpert(int expert, Parameter newW1, Parameter newW2) {
        Checks.require(expert >= 0 && expert < count(), "expert: must be in [0, " + count() + "), got " + expert);
        Checks.notNull("w1", newW1);
        Checks.notNull("w2", newW2);
        Checks.tensor("w1", newW1.value(), backend.device(), DType.F32, w1[expert].value().shape());
        Checks.tensor("w2", newW2.value(), backend.device(), DType.F32, w2[expert].value().shape());
        w1[expert] = newW1;
        w2[expert] = newW2;
        forEachWorkingCopy(expert, this::refresh);
        for (int slot = 0; slot < count(); slot++) {
            if (expertOfSlot[slot] == expert) {
                bindSlot(slot, expert);
            }
        }
    }

    /** Slot (group) s of the grouped GEMMs computes expert expertOfSlot[s]; a permutation of the experts. */
    public void setSlotOrder(int[] slotExperts) {
        Checks.notNull("slotExperts", slotExperts);
        Checks.require(slotExperts.length == count(),
                "slotExperts: expected " + count() + " entries, got " + slotExperts.length);
        boolean[] seen = new boolean[count()];
        for (int s = 0; s < slotExperts.length; s++) {
            int e = slotExperts[s];
            Checks.require(e >= 0 && e < count() && !seen[e],
                    "slotExperts[" + s + "]: expert " + e + " is out of range or repeated in " + Arrays.toString(slotExperts));
            seen[e] = true;
        }
        for (int s = 0; s < slotExperts.length; s++) {
            expertOfSlot[s] = slotExperts[s];
            bindSlot(s, slotExperts[s]);
        }
    }

    public int[] slotOrder() {
        return expertOfSlot.clone();
    }

    private void bindSlot(int slot, int expert) {
        w1Table.set(slot, dtype == DType.BF16 ? w1Work[expert] : w1[expert].value());
        w2Table.set(slot, dtype == DType.BF16 ? w2Work[expert] : w2[expert].value());
        w1GradTable.set(slot, w1[expert].grad());
        w2GradTable.set(slot, w2[expert].grad());
    }

    /**
     * Stands for zeroing every expert's gradient without writing it: the contents are undefined
     * until the next {@link #backward} (or {@link #backwardWithoutRows}), which then writes them
     * (GEMMs with beta 0) instead of adding to them: the same values as zeroing first, without a
     * pass over memory that backward overwrites anyway (as PyTorch's zero_grad with
     * set_to_none). Read no gradient in between.
     */
    public void discardGradients() {
        gradientsDiscarded = true;
    }

    /** A backward with no rows: adds nothing to the gradients, so discarded ones become zeros. */
    public void backwardWithoutRows() {
        if (gradientsDiscarded) {
            parameters().forEach(Parameter::zeroGrad);
            gradientsDiscarded = false;
        }
    }

    /**
     * xs [R, hidden] grouped by offsets [count + 1] -> h = xs · W1 [R, inputWidth], a = act(h)
     * [R, ffn] (both kept for backward), out = a · W2 [R, hidden]; all of {@link #dtype()}.
     */
    public void forward(Tensor offsets, Tensor xs, Tensor h, Tensor a, Tensor out) {
        Checks.tensor("xs", xs, backend.device(), dtype, ANY, hidden);
        backend.groupedGemmNn(offsets, xs, w1Table, h);
        backend.activationForward(activation, h, a);
        backend.groupedGemmNn(offsets, a, w2Table, out);
    }

    /**
     * From gradOut [R, hidden]: accumulates every expert's W1/W2 gradient and writes
     * gradXs [R, hidden]; gradA [R, ffn] and gradH [R, inputWidth] are scratch.
     */
    public void backward(Tensor offsets, Tensor xs, Tensor h, Tensor a, Tensor gradOut, Tensor gradA, Tensor gradH,
            Tensor gradXs) {
        Checks.tensor("xs", xs, backend.device(), dtype, ANY, hidden);
        Checks.tensor("gradOut", gradOut, backend.device(), dtype, xs.dim(0), hidden);
        // beta 0 writes every slot's gradient, an empty group's with zeros
        float beta = gradientsDiscarded ? 0f : 1f;
        gradientsDiscarded = false;
        backend.groupedGemmTn(offsets, a, gradOut, beta, w2GradTable);
        backend.groupedGemmNt(offsets, gradOut, w2Table, gradA);
        backend.activationBackward(activation, h, gradA, gradH);
        backend.groupedGemmTn(offsets, xs, gradH, beta, w1GradTable);
        backend.groupedGemmNt(offsets, gradH, w1Table, gradXs);
    }

    private static List<Tensor> values(Parameter[] ps) {
        return Arrays.stream(ps).map(Parameter::value).toList();
    }

    private static List<Tensor> grads(Parameter[] ps) {
        return Arrays.stream(ps).map(Parameter::grad).toList();
    }
}
