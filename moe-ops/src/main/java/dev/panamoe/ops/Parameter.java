package dev.panamoe.ops;

/** A trainable tensor and its gradient (same shape), under a dotted name such as "experts.3.w1". */
public record Parameter(String name, Tensor value, Tensor grad) {

    public Parameter {
        if (name == null || name.isEmpty()) {
            throw new IllegalArgumentException("name: must not be empty, got " + name);
        }
        if (value == null || grad == null) {
            throw new IllegalArgumentException(name + ": value and grad must not be null");
        }
        if (value.dtype() != grad.dtype() || !java.util.Arrays.equals(value.shape(), grad.shape())) {
            throw new IllegalArgumentException(name + ": grad " + grad.describe() + " does not match value " + value.describe());
        }
    }

    /** Allocates a zero value and a zero gradient in scope. */
    public static Parameter allocate(TensorScope scope, String name, int... shape) {
        return new Parameter(name, scope.allocate(name, DType.F32, shape), scope.allocate(name + ".grad", DType.F32, shape));
    }

    public void zeroGrad() {
        grad.fill(0f);
    }
}
