// AdamW over 96 parameters (12.6M elements) with bf16 working copies: the fused step against
// the update followed by a convert, and the update alone, six rounds of 20 steps each.
import dev.panamoe.ops.*;
import java.util.*;
public class Adam {
    public static void main(String[] a) {
        Backend cpu = CpuBackend.get();
        int[] sizes = {256 * 768, 256 * 256, 256 * 1024, 1024 * 256, 256 * 512, 512 * 256, 256, 768};
        try (TensorScope s = TensorScope.confined(cpu)) {
            List<Tensor[]> ps = new ArrayList<>();
            Random r = new Random(1);
            for (int rep = 0; rep < 12; rep++) for (int n : sizes) {
                Tensor p = s.allocate("p", DType.F32, n), g = s.allocate("g", DType.F32, n), m = s.allocate("m", DType.F32, n), v = s.allocate("v", DType.F32, n), w = s.allocate("w", DType.BF16, n);
                float[] x = new float[n]; for (int i = 0; i < n; i++) x[i] = (float) r.nextGaussian(); p.copyFrom(x); g.copyFrom(x);
                ps.add(new Tensor[] {p, g, m, v, w});
            }
            long total = 0; for (Tensor[] t : ps) total += t[0].numel();
            System.out.println("parameters: " + ps.size() + ", elements " + total);
            for (int round = 0; round < 6; round++) {
                long t0 = System.nanoTime();
                for (int k = 0; k < 20; k++) for (Tensor[] t : ps) cpu.adamwStep(t[0], t[1], t[2], t[3], t[4], 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, k + 1);
                long t1 = System.nanoTime();
                for (int k = 0; k < 20; k++) { for (Tensor[] t : ps) cpu.adamwStep(t[0], t[1], t[2], t[3], 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, k + 1); for (Tensor[] t : ps) cpu.convert(t[0], t[4]); }
                long t2 = System.nanoTime();
                for (int k = 0; k < 20; k++) for (Tensor[] t : ps) cpu.adamwStep(t[0], t[1], t[2], t[3], 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, k + 1);
                long t3 = System.nanoTime();
                System.out.printf("fused %.2f ms  adamw+convert %.2f ms  adamw alone %.2f ms%n", (t1 - t0) / 20e6, (t2 - t1) / 20e6, (t3 - t2) / 20e6);
            }
        }
    }
}
