package dev.panamoe.runtime.train;

import dev.panamoe.ops.Backend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.Parameter;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * AdamW (Loshchilov and Hutter) with bias correction and decoupled weight decay, one
 * {@link Backend#adamwStep} per parameter. Every parameter has moments of its own (m and v tensors
 * of its shape, named "name.m" and "name.v"), so the optimizer state of one expert can be read,
 * saved or moved without touching the others'.
 *
 * <p>Weight decay applies to matrices (rank >= 2: linear weights, embeddings, the router gate and
 * the expert weights), not to biases and norm weights, as in GPT-2 and nanoGPT.
 */
public final class AdamW implements AutoCloseable {

    /** One parameter with its moments and the weight decay it gets. */
    public record State(Parameter parameter, Tensor m, Tensor v, float weightDecay) {
    }

    private final Backend backend;
    private final float beta1;
    private final float beta2;
    private final float eps;
    private final TensorScope scope;
    private final Map<String, State> states = new LinkedHashMap<>();

    public AdamW(Backend backend, List<Parameter> parameters, float weightDecay, float beta1, float beta2, float eps) {
        if (!(weightDecay >= 0) || !(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) || !(eps > 0)) {
            throw new IllegalArgumentException("weightDecay, beta1, beta2, eps: need weightDecay >= 0, betas in [0, 1)"
                    + " and eps > 0, got " + weightDecay + ", " + beta1 + ", " + beta2 + ", " + eps);
        }
        this.backend = backend;
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        this.scope = TensorScope.shared(backend);
        for (Parameter p : parameters) {
            Tensor value = p.value();
            State s = new State(p, scope.allocate(p.name() + ".m", DType.F32, value.shape()),
                    scope.allocate(p.name() + ".v", DType.F32, value.shape()), value.rank() >= 2 ? weightDecay : 0f);
            if (states.putIfAbsent(p.name(), s) != null) {
                scope.close();
                throw new IllegalArgumentException("parameters: the name '" + p.name() + "' appears twice");
            }
        }
    }

    /** With the hyper-parameters of a training configuration. */
    public static AdamW of(Backend backend, List<Parameter> parameters, TrainingConfig config) {
        return new AdamW(backend, parameters, config.weightDecay(), config.beta1(), config.beta2(), config.eps());
    }

    /** Updates every parameter from its gradient: optimizer step {@code step} (from 1) at rate {@code lr}. */
    public void step(float lr, int step) {
        step(lr, step, 1f, Map.of());
    }

    /**
     * The same on the gradients scaled by {@code gradScale} (gradient clipping's factor, 1 for
     * none) as they are read, rather than in a pass of their own, also rounding each updated
     * master into its working copy ({@code workingCopies}: a parameter's value tensor -> the bf16
     * tensor the passes read, by identity) in the same pass over the parameter, rather than in a
     * second one that reads every master again. A parameter absent from the map is updated
     * alone: the caller makes sure that every copy the passes read is in it ({@code Trainer}
     * checks it on every step). The gradients are left as they were.
     */
    public void step(float lr, int step, float gradScale, Map<Tensor, Tensor> workingCopies) {
        for (State s : states.values()) {
            Parameter p = s.parameter();
            Tensor working = workingCopies.get(p.value());
            if (working == null) {
                backend.adamwStep(p.value(), p.grad(), gradScale, s.m(), s.v(), lr, beta1, beta2, eps,
                        s.weightDecay(), step);
            } else {
                backend.adamwStep(p.value(), p.grad(), gradScale, s.m(), s.v(), working, lr, beta1, beta2, eps,
                        s.weightDecay(), step);
            }
        }
    }

    /** Every parameter's state, in the order of the parameters given. */
    public List<State> states() {
        return Collections.unmodifiableList(new ArrayList<>(states.values()));
    }

    /** The state of the parameter named {@code name}, e.g. "blocks.1.moe.experts.5.w1". */
    public State state(String name) {
        State s = states.get(name);
        if (s == null) {
            throw new IllegalArgumentException("name: no parameter '" + name + "' in this optimizer");
        }
        return s;
    }

    /** Frees the moments; the parameters belong to the model. */
    @Override
    public void close() {
        scope.close();
    }
}
