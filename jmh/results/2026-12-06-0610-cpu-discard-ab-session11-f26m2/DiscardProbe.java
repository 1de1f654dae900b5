import dev.panamoe.ops.*;
import java.util.*;
// mixtral/4 bf16 layer step (MoELayerBenchmark.trainingStep), gradients zeroed (A) or discarded (B), alternated
public class DiscardProbe {
    public static void main(String[] a) {
        CpuBackend backend = CpuBackend.get();
        try (TensorScope scope = TensorScope.shared(backend);
             MoELayer layer = new MoELayer(backend, MoELayer.Config.builder().hidden(1024).ffn(3584).experts(8).topK(2)
                .activation(Activation.SWIGLU).dropless().dtype(DType.BF16).build(), 1)) {
            Tensor x = scope.allocate("x", DType.BF16, 4096, 1024), g = scope.allocate("g", DType.BF16, 4096, 1024);
            x.fill(0.5f); g.fill(1e-3f);
            int n = Integer.parseInt(a[0]);
            double[][] t = new double[2][n];
            for (int i = -2; i < n; i++) {
                for (int v = 0; v < 2; v++) {
                    long t0 = System.nanoTime();
                    if (v == 0) layer.zeroGrad(); else layer.discardGradients();
                    layer.forward(x); layer.backward(g); layer.refreshWorkingCopies();
                    if (i >= 0) t[v][i] = (System.nanoTime() - t0) / 1e6;
                }
            }
            for (int v = 0; v < 2; v++) Arrays.sort(t[v]);
            System.out.printf("step, median of %d alternated: zeroGrad %.1f ms, discardGradients %.1f ms, ratio %.3f%n",
                n, t[0][n / 2], t[1][n / 2], t[0][n / 2] / t[1][n / 2]);
        }
    }
}
