package dev.panamoe.examples;

import dev.panamoe.ops.Backend;
import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.MoELayer;
import dev.panamoe.ops.Parameter;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import java.util.Arrays;
import java.util.Locale;
import java.util.Random;

/**
 * One MoE layer on the CPU: forward, backward of the loss |y|^2 / 2, and a check of the input
 * gradient against a central difference of the loss along a random direction.
 *
 * <p>Run with {@code java --enable-native-access=ALL-UNNAMED -cp ... dev.panamoe.examples.MoELayerExample}.
 */
public final class MoELayerExample {
    private MoELayerExample() {
    }

    public static void main(String[] args) {
        Backend cpu = CpuBackend.get();
        // The auxiliary losses are off so that |y|^2 / 2 is the whole loss the backward pass differentiates.
        MoELayer.Config config = MoELayer.Config.builder()
                .hidden(64).ffn(128).experts(8).topK(2).auxLossCoeff(0f).zLossCoeff(0f).build();
        int tokens = 96;
        Random rng = new Random(7);
        try (TensorScope scope = TensorScope.confined(cpu);
             MoELayer layer = new MoELayer(cpu, config, 42)) {
            Tensor x = scope.allocate("x", DType.F32, tokens, config.hidden());
            float[] input = new float[(int) x.numel()];
            float[] direction = new float[input.length];
            for (int i = 0; i < input.length; i++) {
                input[i] = (float) rng.nextGaussian();
                direction[i] = (float) rng.nextGaussian();
            }
            x.copyFrom(input);

            Tensor y = layer.forward(x);           // owned by the layer's workspace: read it before the next call
            double loss = halfSquaredNorm(y);
            System.out.println("routed tokens per expert: " + Arrays.toString(layer.workspace().routedCounts()));
            Tensor gradX = layer.backward(y);       // dL/dy = y for L = |y|^2 / 2
            float[] g = gradX.toFloatArray();
            double analytic = 0;
            for (int i = 0; i < g.length; i++) {
                analytic += (double) g[i] * direction[i];
            }
            for (Parameter p : layer.parameters()) {
                if (p.name().equals("router.weight") || p.name().equals("experts.0.w1")) {
                    System.out.printf(Locale.ROOT, "%s %s: |grad| = %.4f%n", p.name(),
                            Arrays.toString(p.value().shape()), norm(p.grad()));
                }
            }

            double h = 1e-3;
            double plus = lossAt(layer, x, input, direction, h);
            double minus = lossAt(layer, x, input, direction, -h);
            double numeric = (plus - minus) / (2 * h);
            System.out.printf(Locale.ROOT, "loss %.4f%n", loss);
            System.out.printf(Locale.ROOT, "directional derivative: backward %.5f, central difference %.5f, relative error %.2e%n",
                    analytic, numeric, Math.abs(analytic - numeric) / Math.abs(numeric));
        }
    }

    /** The loss at x = input + step * direction (x is overwritten). */
    private static double lossAt(MoELayer layer, Tensor x, float[] input, float[] direction, double step) {
        float[] shifted = new float[input.length];
        for (int i = 0; i < input.length; i++) {
            shifted[i] = (float) (input[i] + step * direction[i]);
        }
        x.copyFrom(shifted);
        return halfSquaredNorm(layer.forward(x));
    }

    private static double halfSquaredNorm(Tensor t) {
        double n = norm(t);
        return n * n / 2;
    }

    private static double norm(Tensor t) {
        double sum = 0;
        for (float v : t.toFloatArray()) {
            sum += (double) v * v;
        }
        return Math.sqrt(sum);
    }
}
